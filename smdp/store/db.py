"""Async database engine for SQLite (embedded default) and PostgreSQL (several workers).

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions, so there is exactly one writer at a
time and a read-then-update inside a transaction can't race.  PostgreSQL uses row locks
(``SELECT ... FOR UPDATE``) taken by the query functions (smdp.store.profiles, sessions, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.crypto.sealed import Sealer
from smdp.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``; ``postgresql://`` → ``postgresql+asyncpg://``."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # The master key of this database's sealed columns (profile packages, confirmation-code digests), for
        # writers given none: set by whoever opens it for a data directory (the CLI, a DownloadService).
        self.sealer: Sealer | None = None
        if self.is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(self.url, connect_args={"timeout": 30})
            _sqlite_one_writer(self.engine)
        else:
            self.engine = create_async_engine(self.url, pool_size=10, max_overflow=10, pool_pre_ping=True)

    async def upgrade(self, sealer: Sealer | None = None, target: str = "head") -> None:
        """Migrate the schema to ``target`` (default: the newest revision), creating it in an empty database.

        ``sealer`` (default: :attr:`sealer`) is the data directory's master key, which a data migration needs
        to seal what an older build kept in clear; an upgrade that has such rows fails without one
        (:class:`smdp.store.migrate.SealerRequired`)."""
        from smdp.store import migrate

        chosen = sealer if sealer is not None else self.sealer
        async with self.engine.connect() as conn:
            await conn.run_sync(lambda sync: migrate.upgrade(sync, chosen, target))

    async def revision(self) -> str | None:
        """The schema revision of the database (None: no migration has run on it)."""
        from smdp.store import migrate

        async with self.engine.connect() as conn:
            return await conn.run_sync(migrate.current_revision)

    async def create_all(self) -> None:
        """The schema of this build: the migrations run to head (kept for callers that create tables)."""
        await self.upgrade()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_one_writer(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN and can't do IMMEDIATE; take over, as the
    # SQLAlchemy documentation recommends for serializable SQLite transactions.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")
