"""From the first release to the hardening build: secrets at rest, one profile lifecycle, outbox dead letters.

- profile: ``der`` (the profile package in clear) becomes ``package_sealed`` (sealed with the data directory's
  master key, context ``b"profile:" + ICCID``); ``cc_hash`` (SHA-256 of the confirmation code, in clear) is
  sealed in place (context ``b"cc:" + ICCID``); ``cc_hash_hex`` is new and stays NULL for existing profiles
  (the code itself was never stored, so its hex-decoded digest can't be made: the lab option that accepts
  it does not apply to them).  The lifecycle's columns: ``order_eid`` (set to ``eid``: the first release bound
  an order and a download to ``eid`` alone), ``order_seq`` (0), ``bpp_transaction_id`` (the newest session
  that delivered a BPP for the profile, if any), ``euicc_state`` (NULL: unknown).
- download_session: ``order_seq`` (0 for a session of a profile, so that sessions under way carry on).
- notification: ``applied`` (false: the first release did not record it) and ``disposition`` (NULL).
- operator: ``callback_ca``.  outbox_event: ``dead_at`` (indexed) and ``retried_at``.  (Databases that got
  these three from the ad-hoc column listener of earlier builds have no revision, and are refused: see
  smdp.store.migrate.upgrade.)

Sealing needs the master key: it comes as ``config.attributes["sealer"]``; without it, an upgrade with
profiles to convert fails (SealerRequired) and changes nothing.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_profile = sa.table(
    "profile",
    sa.column("id", sa.Integer()),
    sa.column("iccid", sa.String()),
    sa.column("eid", sa.String()),
    sa.column("der", sa.LargeBinary()),
    sa.column("package_sealed", sa.LargeBinary()),
    sa.column("cc_hash", sa.LargeBinary()),
    sa.column("order_eid", sa.String()),
    sa.column("order_seq", sa.Integer()),
    sa.column("bpp_transaction_id", sa.String()),
)
_session = sa.table(
    "download_session",
    sa.column("transaction_id", sa.String()),
    sa.column("profile_id", sa.Integer()),
    sa.column("step", sa.String()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("order_seq", sa.Integer()),
)
_notification = sa.table("notification", sa.column("applied", sa.Boolean()))


def upgrade() -> None:
    # 1. new columns, all nullable for now
    with op.batch_alter_table("profile") as batch:
        batch.add_column(sa.Column("order_eid", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("order_seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("bpp_transaction_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("euicc_state", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("package_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("cc_hash_hex", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("download_session") as batch:
        batch.add_column(sa.Column("order_seq", sa.Integer(), nullable=True))
    with op.batch_alter_table("notification") as batch:
        batch.add_column(sa.Column("applied", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("disposition", sa.String(length=255), nullable=True))
    with op.batch_alter_table("operator") as batch:
        batch.add_column(sa.Column("callback_ca", sa.Text(), nullable=True))
    with op.batch_alter_table("outbox_event") as batch:
        batch.add_column(sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_outbox_event_dead_at", ["dead_at"], unique=False)

    # 2. data
    _seal_profiles()
    bind = op.get_bind()
    bind.execute(_profile.update().values(order_seq=0, order_eid=_profile.c.eid))
    newest_bpp = (
        sa.select(_session.c.transaction_id)
        .where(_session.c.profile_id == _profile.c.id, _session.c.step == "bpp-delivered")
        .order_by(_session.c.updated_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    bind.execute(_profile.update().values(bpp_transaction_id=newest_bpp))
    bind.execute(_session.update().where(_session.c.profile_id.is_not(None)).values(order_seq=0))
    bind.execute(_notification.update().values(applied=False))

    # 3. constraints of the new columns, and the clear package goes
    with op.batch_alter_table("profile") as batch:
        batch.alter_column("order_seq", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("package_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("der")
    with op.batch_alter_table("notification") as batch:
        batch.alter_column("applied", existing_type=sa.Boolean(), nullable=False)


def _seal_profiles() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_profile.c.id, _profile.c.iccid, _profile.c.der, _profile.c.cc_hash)).all()
    if not rows:
        return
    sealer = context.config.attributes.get("sealer")
    if sealer is None:
        from smdp.store.migrate import SealerRequired

        raise SealerRequired(
            f"schema revision 0002 seals the profile packages and confirmation-code digests that {len(rows)} "
            "profile(s) keep in clear, which needs the data directory's master key: run `smdp db upgrade` "
            "with the data directory (--data-dir) whose master.key belongs to this database"
        )
    for row in rows:
        iccid = row.iccid.encode()
        values = {"package_sealed": sealer.seal(bytes(row.der), context=b"profile:" + iccid)}
        if row.cc_hash is not None:
            values["cc_hash"] = sealer.seal(bytes(row.cc_hash), context=b"cc:" + iccid)
        bind.execute(_profile.update().where(_profile.c.id == row.id).values(**values))


def downgrade() -> None:
    raise NotImplementedError("no downgrade below 0002: it would put profile packages back in clear")
