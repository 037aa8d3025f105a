"""Schema migrations (smdp.store.migrations): a database of the first release (revision 0001), with rows as
that build wrote them, upgraded to head; the migrated schema equals the tables' metadata; ``smdp db``."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel, select

from smdp.cli import main
from smdp.crypto.cc import (
    confirmation_code_hash,
    confirmation_code_hash_from_digest,
    open_confirmation_code_digest,
)
from smdp.crypto.sealed import Sealer
from smdp.profiles.demo import build_demo_profile
from smdp.services.profiles import open_package
from smdp.store import migrate
from smdp.store.db import Database
from smdp.store.outbox import event_state
from smdp.store.tables import DownloadSession, Notification, Operator, OutboxEvent, Profile

ICCID = "8988247000000000017"
EID = "89049032123451234512345678901235"
CODE = "1234"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def old_rows(der: bytes) -> dict[str, list[dict]]:
    """Rows as the first release (commit 3922079) wrote them: the package and SHA-256(code) in clear."""
    return {
        "operator": [dict(id=1, name="acme", token_sha256="ab" * 32, callback_url="https://ops.example", created_at=NOW)],
        "profile": [dict(
            id=1, iccid=ICCID, matching_id="MATCH-1", eid=EID, state="Released", operator_id=1, profile_type=None,
            smds_address=None, der=der, profile_metadata={"serviceProviderName": "ACME", "profileName": "Demo"},
            cc_hash=hashlib.sha256(CODE.encode()).digest(), cc_failures=1, reusable=False, download_attempts=1,
            max_download_attempts=3, expires_at=NOW + timedelta(days=30), last_euicc_otpk=b"\x04" + b"\x11" * 64,
            last_smdp_otsk_sealed=b"\x01sealed-otsk", created_at=NOW, updated_at=NOW,
        )],
        "download_session": [dict(
            transaction_id="00" * 16, step="bpp-delivered", server_challenge=b"\x22" * 16, smdp_address="smdp.example",
            ci_pkid=b"\x33" * 20, eid=EID, euicc_certificate=b"\x30\x00", profile_id=1, matching_id="MATCH-1",
            smdp_signature2=b"\x44" * 64, store_metadata=b"\xbf\x25\x00", status_code=None, created_at=NOW,
            updated_at=NOW, expires_at=NOW + timedelta(hours=1),
        )],
        "notification": [dict(
            id=1, digest="cd" * 32, eid=EID, seq_number=7, event="install", iccid=ICCID, transaction_id="00" * 16,
            success=True, detail={"result": "ok"}, der=b"\xbf\x37\x00", received_at=NOW,
        )],
        "outbox_event": [dict(
            id=1, event_id="6f1c2b52-0000-4000-8000-000000000001", operator_id=1, payload={"eventName": "BPP download"},
            attempts=2, next_attempt_at=NOW, delivered_at=None, last_error="connection refused", created_at=NOW,
        )],
    }


async def first_release_database(url: str) -> tuple[Database, bytes]:
    db = Database(url)
    await db.upgrade(target="0001")
    assert await db.revision() == "0001"
    der = build_demo_profile(iccid=ICCID, imsi="001010000000001", ki=os.urandom(16), opc=os.urandom(16))
    async with db.engine.begin() as conn:
        metadata = sa.MetaData()
        await conn.run_sync(metadata.reflect)
        for table, rows in old_rows(der).items():
            await conn.execute(metadata.tables[table].insert(), rows)
    return db, der


async def schema_diffs(db: Database) -> list:
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), SQLModel.metadata)
        )


def utc(value: datetime | None) -> datetime | None:  # SQLite gives naive datetimes back
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


async def test_fresh_database_is_head_and_equals_the_metadata(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await db.revision() is None
        await db.create_all()  # = upgrade to head
        assert await db.revision() == migrate.head_revision()
        assert await schema_diffs(db) == []
        await db.upgrade()  # again: nothing to do
        assert await db.revision() == migrate.head_revision()
    finally:
        await db.dispose()


async def test_first_release_rows_survive_the_upgrade(database_url: str) -> None:
    db, der = await first_release_database(database_url)
    sealer = Sealer(os.urandom(32))
    try:
        await db.upgrade(sealer)
        assert await db.revision() == migrate.head_revision()
        assert await schema_diffs(db) == []
        old = old_rows(der)
        async with db.transaction() as s:
            profile = (await s.exec(select(Profile))).one()
            session = (await s.exec(select(DownloadSession))).one()
            notification = (await s.exec(select(Notification))).one()
            operator = (await s.exec(select(Operator))).one()
            event = (await s.exec(select(OutboxEvent))).one()

        # the package and the confirmation-code digest are sealed now, and open to what they were
        assert der not in profile.package_sealed
        assert open_package(sealer, profile) == der
        assert profile.cc_hash != old["profile"][0]["cc_hash"]
        digest = open_confirmation_code_digest(sealer, ICCID, profile.cc_hash)
        transaction_id = bytes(16)
        assert confirmation_code_hash_from_digest(digest, transaction_id) == confirmation_code_hash(CODE.encode(), transaction_id)
        assert confirmation_code_hash_from_digest(digest, transaction_id) != confirmation_code_hash(b"4321", transaction_id)
        assert profile.cc_hash_hex is None
        # the lifecycle's new columns
        assert (profile.order_eid, profile.order_seq, profile.bpp_transaction_id, profile.euicc_state) == (EID, 0, "00" * 16, None)
        assert session.order_seq == 0
        assert (notification.applied, notification.disposition) == (False, None)
        assert operator.callback_ca is None
        assert (event.dead_at, event.retried_at, event_state(event)) == (None, None, "pending")

        # every other column as it was
        def same(row: object, expected: dict, skip: tuple[str, ...] = ()) -> None:
            for name, value in expected.items():
                if name in skip:
                    continue
                got = getattr(row, name)
                assert (utc(got) if isinstance(got, datetime) else got) == value, name

        same(profile, old["profile"][0], skip=("der", "cc_hash"))
        same(session, old["download_session"][0])
        same(notification, old["notification"][0])
        same(operator, old["operator"][0])
        same(event, old["outbox_event"][0])

        await db.upgrade(sealer)  # twice: a no-op
        async with db.transaction() as s:
            assert (await s.exec(select(Profile.package_sealed))).one() == profile.package_sealed
    finally:
        await db.dispose()


async def test_upgrade_without_the_master_key_fails_and_changes_nothing(database_url: str) -> None:
    db, _ = await first_release_database(database_url)
    try:
        with pytest.raises(migrate.SealerRequired, match="master key"):
            await db.upgrade()
        assert await db.revision() == "0001"
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("profile")})
        assert "der" in columns and "package_sealed" not in columns
    finally:
        await db.dispose()


async def test_empty_first_release_database_needs_no_key(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.upgrade(target="0001")
        await db.upgrade()  # no rows to seal
        assert await db.revision() == migrate.head_revision()
    finally:
        await db.dispose()


async def test_unversioned_first_release_database_is_adopted(tmp_path: Path) -> None:
    """A database made by the first release's create_all has no alembic_version: taken as 0001."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db, der = await first_release_database(url)
    sealer = Sealer(os.urandom(32))
    try:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("DROP TABLE alembic_version")
        assert await db.revision() is None
        await db.upgrade(sealer)
        assert await db.revision() == migrate.head_revision()
        async with db.transaction() as s:
            assert open_package(sealer, (await s.exec(select(Profile))).one()) == der
    finally:
        await db.dispose()


def test_cli_db_upgrade_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()  # only serve and pki init create a data directory
    args = ["--data-dir", str(data)]
    assert main(["db", "status", "--json", *args]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status == {"revision": None, "head": migrate.head_revision(), "upToDate": False}
    assert main(["db", "upgrade", *args]) == 0
    assert "to " + migrate.head_revision() in capsys.readouterr().out
    assert main(["db", "upgrade", "--json", *args]) == 0  # twice: nothing to do
    assert json.loads(capsys.readouterr().out)["from"] == migrate.head_revision()
    assert main(["db", "status", "--json", *args]) == 0
    assert json.loads(capsys.readouterr().out) == {"revision": migrate.head_revision(), "head": migrate.head_revision(), "upToDate": True}
    assert main(["db", "status", *args]) == 0
    assert "up to date" in capsys.readouterr().out


async def test_workers_starting_together_migrate_once(database_url: str) -> None:
    import asyncio

    dbs = [Database(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(db.upgrade() for db in dbs))
        assert {await db.revision() for db in dbs} == {migrate.head_revision()}
    finally:
        for db in dbs:
            await db.dispose()
