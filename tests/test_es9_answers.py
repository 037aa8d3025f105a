"""SGP.22 answers a conformance lab checks (5.6.2, 5.6.3, 5.3.2): confirmation-code attempts within one session,
the default SM-DP+ use case, and the SM-DP+ address given to operators.  The download service is driven
directly by a virtual eUICC, as the LPA would."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from smdp.crypto.sealed import Sealer
from smdp.pki.store import load_server_credentials
from smdp.rsp.status import RspError
from smdp.services.download import DownloadService
from smdp.services.profiles import import_profile
from smdp.store.db import Database
from smdp.store.tables import DownloadSession, Profile
from tests.device_tools import Device, authenticate, demo_iccid, demo_package, get_bpp, new_device

ADDRESS = "smdp.test"


@pytest.fixture
async def download(tmp_path: Path, pki_manifest: Path) -> AsyncIterator[DownloadService]:
    db = Database(f"sqlite:///{tmp_path / 'smdp.db'}")
    await db.create_all()
    yield DownloadService(db, load_server_credentials(pki_manifest), Sealer(os.urandom(32)), frozenset({ADDRESS}))
    await db.dispose()


async def _code(coroutine: object) -> tuple[str, str]:
    with pytest.raises(RspError) as error:
        await coroutine  # type: ignore[misc]
    return error.value.code.subject_code, error.value.code.reason_code


async def _row(download: DownloadService, table: type, **where: object) -> object:
    async with download.db.transaction() as db:
        query = select(table)
        for name, value in where.items():
            query = query.where(getattr(table, name) == value)
        return (await db.exec(query)).one()


async def _after_a_wrong_code(download: DownloadService, tmp_path: Path, manifest: Path) -> tuple[str, str, Device, str, dict[str, Any]]:
    """An order with confirmation code 12345678, a session for it, and one wrong code sent (8.2.7/3.8)."""
    iccid = demo_iccid()
    imported = await import_profile(download.db, demo_package(iccid), confirmation_code="12345678")
    assert imported.matching_id is not None
    device = new_device(tmp_path, manifest, "phone")
    tid, auth = await authenticate(download, device, imported.matching_id, ADDRESS)
    assert await _code(get_bpp(download, device, tid, auth, "00000000")) == ("8.2.7", "3.8")
    return iccid, imported.matching_id, device, tid, auth


async def test_wrong_confirmation_code_leaves_the_session_usable_until_the_limit(
    download: DownloadService, tmp_path: Path, pki_manifest: Path
) -> None:
    """SGP.22 5.6.3: 8.2.7/3.8 keeps the session; the third wrong code is 8.2.7/6.4 and ends it."""
    _iccid, matching_id, device, tid, auth = await _after_a_wrong_code(download, tmp_path, pki_manifest)
    assert (await _row(download, DownloadSession, transaction_id=tid)).step == "authenticated"  # type: ignore[attr-defined]
    assert await _code(get_bpp(download, device, tid, auth, "11111111")) == ("8.2.7", "3.8")
    assert await _code(get_bpp(download, device, tid, auth, "22222222")) == ("8.2.7", "6.4")
    session = await _row(download, DownloadSession, transaction_id=tid)
    assert session.step == "failed" and session.status_code == "8.2.7/6.4"  # type: ignore[attr-defined]
    # the order is blocked: a new session with the right code gets 8.2.7/6.4 at authenticateClient
    assert await _code(authenticate(download, device, matching_id, ADDRESS)) == ("8.2.7", "6.4")


async def test_right_confirmation_code_after_a_wrong_one_in_the_same_session(
    download: DownloadService, tmp_path: Path, pki_manifest: Path
) -> None:
    """A correct code in the same session gets the BPP and resets the failure count."""
    iccid, _matching_id, device, tid, auth = await _after_a_wrong_code(download, tmp_path, pki_manifest)
    assert (await _row(download, Profile, iccid=iccid)).cc_failures == 1  # type: ignore[attr-defined]
    answer = await get_bpp(download, device, tid, auth, "12345678")
    assert answer["transactionId"] == tid and answer["boundProfilePackage"]
    profile = await _row(download, Profile, iccid=iccid)
    assert profile.state == "Downloaded" and profile.cc_failures == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("lab_option", [False, True])
async def test_hex_decoded_confirmation_code_only_behind_the_lab_option(
    download: DownloadService, tmp_path: Path, pki_manifest: Path, lab_option: bool
) -> None:
    """lpac hashes the code's ASCII digits; some test tools hash its hex-decoded bytes: accepted only when asked."""
    download.accept_hex_confirmation_code = lab_option
    imported = await import_profile(download.db, demo_package(demo_iccid()), confirmation_code="12345678")
    device = new_device(tmp_path, pki_manifest, "phone")
    tid, auth = await authenticate(download, device, imported.matching_id, ADDRESS)
    if lab_option:
        assert (await get_bpp(download, device, tid, auth, "12345678", hex_code=True))["boundProfilePackage"]
    else:
        assert await _code(get_bpp(download, device, tid, auth, "12345678", hex_code=True)) == ("8.2.7", "3.8")
        assert (await get_bpp(download, device, tid, auth, "12345678"))["boundProfilePackage"]


async def test_default_smdp_without_a_pending_order_refuses_the_eid(
    download: DownloadService, tmp_path: Path, pki_manifest: Path
) -> None:
    """SGP.22 5.6.2: no matching ID and no order for the EID is 8.1.1/3.8 (EID refused), not 8.2.6/3.8."""
    device = new_device(tmp_path, pki_manifest, "phone")
    assert await _code(authenticate(download, device, None, ADDRESS)) == ("8.1.1", "3.8")
    other = new_device(tmp_path, pki_manifest, "other")
    await import_profile(download.db, demo_package(demo_iccid()), eid=other.eid)  # someone else's default order
    assert await _code(authenticate(download, device, None, ADDRESS)) == ("8.1.1", "3.8")
    assert (await authenticate(download, other, None, ADDRESS))[1]["profileMetadata"]


async def test_confirm_order_answers_the_public_address(tmp_path: Path, pki_manifest: Path) -> None:
    """ConfirmOrder's smdpAddress is the configured public address (serve --address), never the bind address."""
    from contextlib import AsyncExitStack

    from smdp.config import load_settings
    from smdp.server import open_runtime, running
    from tests.es2_tools import operator_client, stock_profiles

    settings = load_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'smdp.db'}", pki_manifest)
    runtime = await open_runtime(settings, frozenset())
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runtime.db.dispose)
        bound = await stack.enter_async_context(running(runtime, "127.0.0.1", 0, "smdp.example.com:8443"))

        class View:  # what the ES2+ test tools need of a running server
            address = bound
            db = runtime.db

        es2 = await operator_client(View, "acme")  # type: ignore[arg-type]
        stack.push_async_callback(es2.close)
        [iccid] = await stock_profiles(View, "acme", 1)  # type: ignore[arg-type]
        await es2.call("downloadOrder", iccid=iccid)
        confirmed = await es2.call("confirmOrder", iccid=iccid, releaseFlag=True)
        assert confirmed["smdpAddress"] == "smdp.example.com:8443" != bound
        assert "smdp.example.com:8443" in runtime.download.addresses  # LPAs may name it in initiateAuthentication
