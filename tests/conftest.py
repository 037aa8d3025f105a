"""Shared fixtures: a test PKI, databases (SQLite always, PostgreSQL when reachable), an in-process server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TS48_DIR = SHARED_DATA / "ts48"
SGP26_DIR = SHARED_DATA / "sgp26"
PG_ADMIN_URL = os.environ.get("SMDP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


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
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
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
