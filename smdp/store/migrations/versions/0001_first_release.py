"""The schema of the first released build (commit 3922079): what ``create_all`` made then.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "operator",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.String(length=1024), nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_operator_name", "operator", ["name"], unique=True)
    op.create_index("ix_operator_token_sha256", "operator", ["token_sha256"], unique=True)

    op.create_table(
        "profile_type",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("template_der", sa.LargeBinary(), nullable=False),
        sa.Column("profile_metadata", sa.JSON(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=True),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("reusable", sa.Boolean(), nullable=False),
        sa.Column("max_download_attempts", sa.Integer(), nullable=True),
        sa.Column("order_validity_days", sa.Integer(), nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profile_type_name", "profile_type", ["name"], unique=True)

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("eid", sa.String(length=32), nullable=False),
        sa.Column("seq_number", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("iccid", sa.String(length=20), nullable=True),
        sa.Column("transaction_id", sa.String(length=32), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        _when("received_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notification_digest", "notification", ["digest"], unique=True)
    op.create_index("ix_notification_eid", "notification", ["eid"], unique=False)
    op.create_index("ix_notification_iccid", "notification", ["iccid"], unique=False)
    op.create_index("ix_notification_transaction_id", "notification", ["transaction_id"], unique=False)

    op.create_table(
        "outbox_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at"),
        _when("delivered_at", nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(["operator_id"], ["operator.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_event_event_id", "outbox_event", ["event_id"], unique=True)
    op.create_index("ix_outbox_event_operator_id", "outbox_event", ["operator_id"], unique=False)
    op.create_index("ix_outbox_event_next_attempt_at", "outbox_event", ["next_attempt_at"], unique=False)
    op.create_index("ix_outbox_event_delivered_at", "outbox_event", ["delivered_at"], unique=False)

    op.create_table(
        "profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iccid", sa.String(length=20), nullable=False),
        sa.Column("matching_id", sa.String(length=255), nullable=True),
        sa.Column("eid", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("profile_type", sa.String(length=64), nullable=True),
        sa.Column("smds_address", sa.String(length=255), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),  # the profile package, in clear
        sa.Column("profile_metadata", sa.JSON(), nullable=False),
        sa.Column("cc_hash", sa.LargeBinary(), nullable=True),  # SHA-256(confirmation code), in clear
        sa.Column("cc_failures", sa.Integer(), nullable=False),
        sa.Column("reusable", sa.Boolean(), nullable=False),
        sa.Column("download_attempts", sa.Integer(), nullable=False),
        sa.Column("max_download_attempts", sa.Integer(), nullable=True),
        _when("expires_at", nullable=True),
        sa.Column("last_euicc_otpk", sa.LargeBinary(), nullable=True),
        sa.Column("last_smdp_otsk_sealed", sa.LargeBinary(), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(["operator_id"], ["operator.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profile_iccid", "profile", ["iccid"], unique=True)
    op.create_index("ix_profile_matching_id", "profile", ["matching_id"], unique=True)
    op.create_index("ix_profile_eid", "profile", ["eid"], unique=False)
    op.create_index("ix_profile_state", "profile", ["state"], unique=False)
    op.create_index("ix_profile_operator_id", "profile", ["operator_id"], unique=False)
    op.create_index("ix_profile_profile_type", "profile", ["profile_type"], unique=False)

    op.create_table(
        "download_session",
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("server_challenge", sa.LargeBinary(), nullable=False),
        sa.Column("smdp_address", sa.String(length=255), nullable=False),
        sa.Column("ci_pkid", sa.LargeBinary(), nullable=False),
        sa.Column("eid", sa.String(length=32), nullable=True),
        sa.Column("euicc_certificate", sa.LargeBinary(), nullable=True),
        sa.Column("profile_id", sa.Integer(), nullable=True),
        sa.Column("matching_id", sa.String(length=255), nullable=True),
        sa.Column("smdp_signature2", sa.LargeBinary(), nullable=True),
        sa.Column("store_metadata", sa.LargeBinary(), nullable=True),
        sa.Column("status_code", sa.String(length=32), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("expires_at"),
        sa.ForeignKeyConstraint(["profile_id"], ["profile.id"]),
        sa.PrimaryKeyConstraint("transaction_id"),
    )
    op.create_index("ix_download_session_step", "download_session", ["step"], unique=False)
    op.create_index("ix_download_session_eid", "download_session", ["eid"], unique=False)
    op.create_index("ix_download_session_profile_id", "download_session", ["profile_id"], unique=False)
    op.create_index("ix_download_session_expires_at", "download_session", ["expires_at"], unique=False)


def downgrade() -> None:
    for table in ("download_session", "profile", "outbox_event", "notification", "profile_type", "operator"):
        op.drop_table(table)
