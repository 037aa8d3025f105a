"""Schema migrations (Alembic), run programmatically on the async engine: no alembic.ini at run time.

The revisions live in ``smdp/store/migrations/versions`` (shipped in the package).  ``0001`` is the schema of
the first released build; later revisions change it, with data migrations where needed.  A data migration
that must seal secrets (``0002``: profile packages and confirmation-code digests stored in clear by 0001) gets
the data directory's :class:`~smdp.crypto.sealed.Sealer` from ``config.attributes["sealer"]``.

The whole upgrade runs in one transaction (PostgreSQL and SQLite both have transactional DDL), so a failed
upgrade leaves the database at the revision it had.  On SQLite, foreign-key enforcement is off while it runs
(Alembic's batch mode rebuilds a table by copying it, which a parent table with children can't survive
otherwise) and the foreign keys are checked before it commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from smdp.crypto.sealed import Sealer

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = int.from_bytes(b"smdp-mig", "big") >> 1  # the PostgreSQL advisory lock held while migrating

__all__ = ["MIGRATIONS_DIR", "SealerRequired", "alembic_config", "current_revision", "head_revision", "upgrade"]


class SealerRequired(RuntimeError):
    """A data migration has secrets to seal and no master key was given."""


def alembic_config(connection: Connection | None = None, sealer: Sealer | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["sealer"] = sealer
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision; None for a database no migration has run on (empty, or made by create_all
    before migrations existed: see :func:`upgrade`)."""
    return MigrationContext.configure(connection).get_current_revision()


def _user_tables(connection: Connection) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def upgrade(connection: Connection, sealer: Sealer | None, target: str = "head") -> None:
    """Migrate the database on ``connection`` (a connection with no transaction begun) to ``target``, in one
    transaction committed here.

    A database that has the tables but no revision was made by ``create_all`` of a build before migrations
    existed: it is taken to be at ``0001`` (the first release's schema) when it still has the first release's
    profile package column, and refused otherwise."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, False)
    try:
        with connection.begin():  # SQLite: BEGIN IMMEDIATE, one writer; so one migration at a time
            if connection.dialect.name == "postgresql":  # several workers starting at once: one migrates
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
            if current_revision(connection) is None and _user_tables(connection):
                _adopt_unversioned(connection, sealer)
            command.upgrade(alembic_config(connection, sealer), target)
            if sqlite:
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise RuntimeError(f"the migration left foreign-key violations: {problems[:5]}")
    finally:
        if sqlite:
            _sqlite_foreign_keys(connection, True)


def _adopt_unversioned(connection: Connection, sealer: Sealer | None) -> None:
    from sqlalchemy import inspect

    columns = {c["name"] for c in inspect(connection).get_columns("profile")} if inspect(connection).has_table("profile") else set()
    if "der" not in columns or "package_sealed" in columns:
        raise RuntimeError(
            "the database has tables but no schema revision, and is not the first release's schema: "
            "it cannot be migrated automatically (make a new database, or stamp its revision by hand)"
        )
    command.stamp(alembic_config(connection, sealer), "0001")


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    # PRAGMA foreign_keys is a no-op inside a transaction, and smdp's SQLite engine begins one (BEGIN
    # IMMEDIATE) on first use: set it on the DB-API connection, between transactions.
    dbapi: Any = connection.connection.dbapi_connection
    cursor = dbapi.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    finally:
        cursor.close()
