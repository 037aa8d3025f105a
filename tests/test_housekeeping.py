"""Housekeeping keeps the session table bounded: sessions nobody authenticated go when their time runs out,
ended ones after the retention period; open and recent ones stay."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from smdp.codec.b64 import b64encode
from smdp.crypto.sealed import Sealer
from smdp.lpa import es10
from smdp.pki.store import load_server_credentials
from smdp.services.download import DownloadService
from smdp.services.profiles import import_profile
from smdp.store.db import Database
from smdp.store.tables import DownloadSession
from tests.device_tools import authenticate, demo_iccid, demo_package, get_bpp, new_device

ADDRESS = "smdp.test"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def service(tmp_path: Path, pki_manifest: Path, database_url: str) -> AsyncIterator[tuple[DownloadService, Clock]]:
    db = Database(database_url)
    await db.create_all()
    clock = Clock()
    download = DownloadService(
        db, load_server_credentials(pki_manifest), Sealer(os.urandom(32)), frozenset({ADDRESS}), clock=clock
    )
    yield download, clock
    await db.dispose()


async def _steps(download: DownloadService) -> dict[str, str]:
    async with download.db.transaction() as db:
        return {row.transaction_id: row.step for row in (await db.exec(select(DownloadSession))).all()}


async def test_unauthenticated_sessions_go_after_their_ttl_and_ended_ones_after_the_retention(
    service: tuple[DownloadService, Clock], tmp_path: Path, pki_manifest: Path
) -> None:
    download, clock = service
    device = new_device(tmp_path, pki_manifest, "phone")
    imported = await import_profile(download.db, demo_package(demo_iccid()))
    info1 = b64encode(es10.get_euicc_info1(device.euicc))
    # 50 initiateAuthentication calls nobody follows up (what a scanner or a broken LPA leaves behind)
    for _ in range(50):
        await download.initiate_authentication(
            {"euiccChallenge": b64encode(bytes(16)), "euiccInfo1": info1, "smdpAddress": ADDRESS}
        )
    tid, auth = await authenticate(download, device, imported.matching_id, ADDRESS)
    await get_bpp(download, device, tid, auth, None)  # a delivered BPP; its result never comes
    assert len(await _steps(download)) == 51

    assert await download.purge_sessions() == 0  # nothing has expired yet
    clock.now += download.session_ttl + timedelta(seconds=1)
    assert await download.expire_sessions() == 51
    assert await download.purge_sessions() == 50  # the never-authenticated ones
    assert await _steps(download) == {tid: "failed"}  # kept: a late result can still be verified

    clock.now += download.session_retention - timedelta(minutes=5)
    assert await download.purge_sessions() == 0
    clock.now += timedelta(minutes=10)
    assert await download.purge_sessions() == 1
    assert await _steps(download) == {}

