"""Shared fixtures: a test PKI, databases (SQLite always, PostgreSQL when reachable), an in-process server."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

# GSMA test data (TS.48 profiles, SGP.26 certificates) for the interop tests: one setting, SMDP_TEST_DATA.
SHARED_DATA = Path(os.environ.get("SMDP_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TS48_DIR = SHARED_DATA / "ts48"
SGP26_DIR = SHARED_DATA / "sgp26"
PG_ADMIN_URL = os.environ.get("SMDP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def sgp26_example_manifest(directory: Path) -> Path:
    """certs/sgp26-pki.toml with its paths pointed at SMDP_TEST_DATA's sgp26 set (the manifest assumes
    ../../shared/data next to the repository, which a clone elsewhere does not have)."""
    example = Path(__file__).resolve().parents[1] / "certs" / "sgp26-pki.toml"
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "sgp26-pki.toml"
    manifest.write_text(example.read_text().replace("../../shared/data/sgp26", SGP26_DIR.as_posix()))
    return manifest


def ts48_files() -> list[Path]:
    return sorted(TS48_DIR.glob("*.der")) if TS48_DIR.is_dir() else []


def require_ts48() -> list[Path]:
    files = ts48_files()
    if not files:
        pytest.skip(f"GSMA TS.48 profiles not found in {TS48_DIR}")
    return files


@pytest.fixture(scope="session")
def pki_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from smdp.pki.issue import init_pki

    return init_pki(tmp_path_factory.mktemp("pki") / "certs")


_PG: bool | None = None


async def pg_available() -> bool:
    global _PG
    if _PG is None:
        import asyncpg

        try:
            conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            _PG = False
        else:
            await conn.close()
            _PG = True
    return _PG


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test; skipped (with the reason) when PostgreSQL is unreachable."""
    if not await pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    import asyncpg

    name = f"smdp_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test on SQLite and again on PostgreSQL (skipped there when unreachable)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'smdp.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[object]:
    """An empty schema on SQLite and on PostgreSQL, with a master key as the CLI's open_database gives it."""
    from smdp.crypto.sealed import Sealer
    from smdp.store.db import Database

    database = Database(database_url)
    database.sealer = Sealer(os.urandom(32))
    await database.create_all()
    yield database
    await database.dispose()


async def table_rows(db: object, table: type) -> list:  # type: ignore[type-arg]
    """Every row of ``table`` (a SQLModel table class)."""
    from sqlmodel import select

    async with db.transaction() as session:  # type: ignore[attr-defined]
        return list((await session.exec(select(table))).all())


@dataclass
class RunningServer:
    address: str  # host:port as an activation code names it
    runtime: object  # smdp.server.Runtime
    data_dir: Path
    manifest: Path
    ca_cert: Path | None

    @property
    def download(self):  # type: ignore[no-untyped-def]
        return self.runtime.download  # type: ignore[attr-defined]

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.runtime.db  # type: ignore[attr-defined]


async def start_server(data_dir: Path, manifest: Path, database_url: str) -> tuple[RunningServer, AsyncExitStack]:
    """An in-process `smdp serve` (ES9+, ES2+, outbox) on an ephemeral loopback port; close the stack to stop."""
    from smdp.config import load_settings
    from smdp.server import open_runtime, running

    settings = load_settings(data_dir, database_url, manifest)
    runtime = await open_runtime(settings, frozenset())
    stack = AsyncExitStack()
    address = await stack.enter_async_context(running(runtime, "127.0.0.1", 0))
    server = RunningServer(address, runtime, data_dir, manifest, runtime.credentials.tls_ca_cert_path)
    return server, stack


@pytest.fixture
async def server(tmp_path: Path, pki_manifest: Path) -> AsyncIterator[RunningServer]:
    """An in-process SM-DP+ on an ephemeral loopback port, SQLite in a temporary data directory."""
    running, stack = await start_server(tmp_path / "data", pki_manifest, f"sqlite:///{tmp_path / 'smdp.db'}")
    yield running
    await stack.aclose()
    await running.db.dispose()


# --- the catch-all detector ----------------------------------------------------------------------------
#
# smdp.web.binding.json_function answers 1.2/4.2 "Execution error" to any exception that is not an RspError
# and logs it with the attribute CATCH_ALL_MARK set.  Bad input must get its precise SGP.22 code, and 1.2/4.2 is
# for real server faults, so such a record fails the test during which it was logged.  A test provoking a real
# fault on purpose opts out with @pytest.mark.allow_execution_error.  The handler sits on the logger itself,
# so it sees servers running in other threads (ThreadedServer) as well as in-process ones; it is installed
# once per session, and each test takes the records logged during its setup, call and teardown.  A record
# logged between tests (say while a module-scoped server stops) fails the session at its end.

CATCH_ALL_LOGGER = "smdp.web.binding"
CATCH_ALL_MARK = "smdp_catch_all"  # smdp.web.binding.CATCH_ALL_MARK


class CatchAllHandler(logging.Handler):
    """Collects the catch-all's records (and only those: other records of the logger are ignored)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.strays: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, CATCH_ALL_MARK, False):
            self.records.append(record)  # emit runs under the handler's lock

    def take(self) -> list[logging.LogRecord]:
        self.acquire()
        try:
            taken, self.records = self.records, []
        finally:
            self.release()
        return taken


def describe_records(records: list[logging.LogRecord]) -> str:
    lines = []
    for record in records:
        lines.append(f"  {record.getMessage()}")
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            lines.append(f"    {type(error).__name__}: {error}")
    return "\n".join(lines)


@pytest.fixture(scope="session", autouse=True)
def catch_all_handler() -> Iterator[CatchAllHandler]:
    from smdp.web.binding import CATCH_ALL_MARK as mark

    assert mark == CATCH_ALL_MARK, "smdp.web.binding marks its catch-all record differently"
    logger = logging.getLogger(CATCH_ALL_LOGGER)
    handler = CatchAllHandler()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    handler.strays.extend(handler.take())
    if handler.strays:
        pytest.fail(
            f"the catch-all of {CATCH_ALL_LOGGER} answered 1.2/4.2 outside any test:\n{describe_records(handler.strays)}",
            pytrace=False,
        )


class ExecutionErrors:
    """What the catch-all logged so far during the current test (for tests marked allow_execution_error)."""

    def __init__(self, handler: CatchAllHandler) -> None:
        self._handler = handler

    def records(self) -> list[logging.LogRecord]:
        return list(self._handler.records)


@pytest.fixture(autouse=True)
def execution_errors(request: pytest.FixtureRequest, catch_all_handler: CatchAllHandler) -> Iterator[ExecutionErrors]:
    """Fails the test if the catch-all of smdp.web.binding (1.2/4.2 Execution error) fired during it."""
    logger = logging.getLogger(CATCH_ALL_LOGGER)
    saved = logger.disabled, logger.level
    logger.disabled = False  # the detector must see the record whatever logging configuration a test set up
    if logger.getEffectiveLevel() > logging.ERROR:
        logger.setLevel(logging.ERROR)
    catch_all_handler.strays.extend(catch_all_handler.take())
    yield ExecutionErrors(catch_all_handler)
    records = catch_all_handler.take()
    logger.disabled = saved[0]
    logger.setLevel(saved[1])
    if records and request.node.get_closest_marker("allow_execution_error") is None:
        pytest.fail(
            f"the catch-all of {CATCH_ALL_LOGGER} answered 1.2/4.2 (Execution error) {len(records)} time(s); "
            f"bad input must get its precise SGP.22 code, and a test provoking a real fault must be marked "
            f"allow_execution_error:\n{describe_records(records)}",
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how much of the run needed GSMA test data, and whether it was there (SMDP_TEST_DATA)."""
    skipped = [
        r for r in terminalreporter.stats.get("skipped", [])
        if isinstance(r.longrepr, tuple) and "GSMA" in str(r.longrepr[2])
    ]  # fmt: skip
    found = TS48_DIR.is_dir() and SGP26_DIR.is_dir()
    terminalreporter.write_line(
        f"GSMA interop data {'found' if found else 'NOT found'} at {SHARED_DATA} (SMDP_TEST_DATA): "
        f"{len(skipped)} test(s) skipped for want of it"
    )
