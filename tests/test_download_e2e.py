"""End-to-end downloads: the real server, the test LPA and the virtual eUICC over HTTPS on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from smdp.codec.b64 import b64decode
from smdp.codec.tlv import iter_tlvs, read_tlv
from smdp.services.profiles import import_profile, open_package
from smdp.store.tables import DownloadSession, Notification, Profile
from tests.conftest import RunningServer, require_ts48, start_server, ts48_files
from tests.es9_tools import HookedClient, open_euicc, run_download


async def _profile(server: RunningServer, iccid: str) -> Profile:
    async with server.db.transaction() as db:
        return (await db.exec(select(Profile).where(Profile.iccid == iccid))).one()


async def _session(server: RunningServer, transaction_id: str) -> DownloadSession:
    async with server.db.transaction() as db:
        return (await db.exec(select(DownloadSession).where(DownloadSession.transaction_id == transaction_id))).one()


async def test_demo_profile_downloads_and_installs_byte_identical(server: RunningServer, tmp_path: Path) -> None:
    from smdp.server import ensure_demo_profile

    code = await ensure_demo_profile(server.db, server.address)
    assert code is not None and str(code).startswith(f"LPA:1${server.address}$")
    euicc = open_euicc(tmp_path, server.manifest)
    result = await run_download(euicc, str(code))
    assert result.ok, result.to_json()
    profile = await _profile(server, result.iccid)
    installed = {p.iccid: p for p in euicc.installed_profiles()}[result.iccid]
    assert installed.package == open_package(server.download.sealer, profile)  # stored sealed, installed as it was
    assert profile.state == "Installed"
    session = await _session(server, result.transaction_id)
    assert session.step == "completed" and session.eid == euicc.eid
    async with server.db.transaction() as db:
        notes = (await db.exec(select(Notification))).all()
    assert [(n.event, n.success, n.iccid) for n in notes] == [("install", True, result.iccid)]


@pytest.mark.parametrize("curve", ["nist", "brainpool"])
@pytest.mark.parametrize("path", ts48_files() or [None], ids=lambda p: p.stem if p else "no-ts48")
async def test_every_ts48_profile_downloads(server: RunningServer, tmp_path: Path, path: Path | None, curve: str) -> None:
    if path is None:
        require_ts48()
    der = path.read_bytes()
    imported = await import_profile(server.db, der, matching_id=f"TS48-{curve}-{path.stem}".upper()[:60])
    euicc = open_euicc(tmp_path, server.manifest, curve)
    result = await run_download(euicc, f"LPA:1${server.address}${imported.matching_id}")
    assert result.ok, result.to_json()
    assert result.iccid == imported.iccid
    installed = euicc.installed_profiles()
    assert len(installed) == 1 and installed[0].package == der  # byte-identical profile elements


async def test_second_download_of_installed_profile_is_refused(server: RunningServer, tmp_path: Path) -> None:
    from smdp.server import ensure_demo_profile

    code = str(await ensure_demo_profile(server.db, server.address))
    assert (await run_download(open_euicc(tmp_path, server.manifest), code)).ok
    again = await run_download(open_euicc(tmp_path, server.manifest, name="other"), code)
    assert not again.ok and (again.subject_code, again.reason_code) == ("8.2", "1.2")


async def test_default_smdp_order_downloads_without_matching_id(server: RunningServer, tmp_path: Path) -> None:
    files = require_ts48()
    euicc = open_euicc(tmp_path, server.manifest)
    await import_profile(server.db, files[0].read_bytes(), eid=euicc.eid)
    result = await run_download(euicc, f"LPA:1${server.address}$")
    assert result.ok, result.to_json()


async def test_retried_download_with_same_euicc_otpk_gets_same_server_otpk(server: RunningServer, tmp_path: Path) -> None:
    """SGP.22 3.1.3.3: the eUICC keeps otPK.EUICC after a failed load; the SM-DP+ reuses otSK.DP for it."""
    files = require_ts48()
    imported = await import_profile(server.db, files[0].read_bytes(), matching_id="RETRY-1")
    code = f"LPA:1${server.address}$RETRY-1"
    euicc = open_euicc(tmp_path, server.manifest)
    client = HookedClient()

    def tamper(answer: dict) -> dict:
        bpp = bytearray(b64decode(answer["boundProfilePackage"]))
        bpp[-3] ^= 0xFF  # inside the last '86' segment
        return {**answer, "boundProfilePackage": __import__("base64").b64encode(bytes(bpp)).decode()}

    client.response_hooks["getBoundProfilePackage"] = tamper
    first = await run_download(euicc, code, client)
    assert not first.ok and first.error_reason == "scp03tSecurityError"
    first_otpk = _smdp_otpk(client.received["getBoundProfilePackage"])
    first_euicc_otpk = _euicc_otpk(client.sent["getBoundProfilePackage"])
    assert (await _profile(server, imported.iccid)).state == "Released"

    client.response_hooks.clear()
    second = await run_download(euicc, code, client)
    assert second.ok, second.to_json()
    assert _euicc_otpk(client.sent["getBoundProfilePackage"]) == first_euicc_otpk
    assert _smdp_otpk(client.received["getBoundProfilePackage"]) == first_otpk
    await client.close()


def _smdp_otpk(answer: dict) -> bytes:
    bpp = read_tlv(b64decode(answer["boundProfilePackage"]))
    isc = read_tlv(bpp.value)
    return next(t.value for t in iter_tlvs(isc.value) if t.tag == 0x5F49)


def _euicc_otpk(body: dict) -> bytes:
    from smdp.codec import asn1

    _kind, ok = asn1.rsp().decode("PrepareDownloadResponse", b64decode(body["prepareDownloadResponse"]))
    return ok["euiccSigned2"]["euiccOtpk"]


async def test_new_euicc_otpk_gets_new_server_otpk(server: RunningServer, tmp_path: Path) -> None:
    files = require_ts48()
    await import_profile(server.db, files[0].read_bytes(), matching_id="FRESH-1", reusable=True)
    code = f"LPA:1${server.address}$FRESH-1"
    keys = []
    for name in ("a", "b"):
        client = HookedClient()
        assert (await run_download(open_euicc(tmp_path, server.manifest, name=name), code, client)).ok
        keys.append(_smdp_otpk(client.received["getBoundProfilePackage"]))
        await client.close()
    assert keys[0] != keys[1]


async def test_restarted_server_continues_a_session(tmp_path: Path, pki_manifest: Path) -> None:
    """Sessions live in the database: a second server on the same data answers the next steps."""
    files = require_ts48()
    url = f"sqlite:///{tmp_path / 'smdp.db'}"
    first, first_runner = await start_server(tmp_path / "data", pki_manifest, url)
    await import_profile(first.db, files[0].read_bytes(), matching_id="RESTART-1")
    client = HookedClient()
    state: dict = {}

    async def restart(answer: dict) -> dict:
        await first_runner.aclose()
        await first.db.dispose()
        second, runner = await start_server(tmp_path / "data", pki_manifest, url)
        second.download.addresses = first.download.addresses | second.download.addresses
        state.update(server=second, runner=runner)
        for function in ("getBoundProfilePackage", "handleNotification"):
            client.route[function] = second.address
        return answer

    client.response_hooks["authenticateClient"] = restart
    result = await run_download(open_euicc(tmp_path, pki_manifest), f"LPA:1${first.address}$RESTART-1", client)
    await client.close()
    assert result.ok, result.to_json()
    assert (await _session(state["server"], result.transaction_id)).step == "completed"
    await state["runner"].aclose()
    await state["server"].db.dispose()


async def test_success_bodies_hold_exactly_the_sgp22_keys(server: RunningServer, tmp_path: Path) -> None:
    """Strict LPAs reject unknown fields: every answer holds the keys of SGP.22 section 6.5.2, no more."""
    files = require_ts48()
    await import_profile(server.db, files[0].read_bytes(), matching_id="KEYS-1")
    client = HookedClient()
    result = await run_download(open_euicc(tmp_path, server.manifest), f"LPA:1${server.address}$KEYS-1", client)
    assert result.ok
    expected = {
        "initiateAuthentication": {
            "header", "transactionId", "serverSigned1", "serverSignature1", "euiccCiPKIdToBeUsed", "serverCertificate"
        },
        "authenticateClient": {"header", "transactionId", "profileMetadata", "smdpSigned2", "smdpSignature2", "smdpCertificate"},
        "getBoundProfilePackage": {"header", "transactionId", "boundProfilePackage"},
    }
    for function, keys in expected.items():
        answer = client.received[function]
        assert set(answer) == keys, function
        assert answer["header"] == {"functionExecutionStatus": {"status": "Executed-Success"}}
    assert client.received["handleNotification"] is None  # HTTP 204, no body
    transaction_id = client.received["initiateAuthentication"]["transactionId"]
    assert transaction_id == transaction_id.upper() and len(bytes.fromhex(transaction_id)) == 16

    await client.close()


async def test_cancel_session_answers_a_header_only_body(server: RunningServer, tmp_path: Path) -> None:
    from smdp.server import ensure_demo_profile

    code = str(await ensure_demo_profile(server.db, server.address))
    client = HookedClient()
    await run_download(open_euicc(tmp_path, server.manifest), code, client, cancel_at="authenticateClient")
    await client.close()
    assert client.received["cancelSession"] == {"header": {"functionExecutionStatus": {"status": "Executed-Success"}}}


async def test_content_type_with_charset_and_any_v2_protocol_are_accepted(server: RunningServer, tmp_path: Path) -> None:
    import aiohttp

    from smdp.codec.b64 import b64encode
    from smdp.lpa import es10

    euicc = open_euicc(tmp_path, server.manifest)
    body = {
        "euiccChallenge": b64encode(es10.get_euicc_challenge(euicc)),
        "euiccInfo1": b64encode(es10.get_euicc_info1(euicc)),
        "smdpAddress": server.address,
    }
    url = f"https://{server.address}/gsma/rsp2/es9plus/initiateAuthentication"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        for content_type, protocol in [("application/json;charset=UTF-8", "gsma/rsp/v2.1.0"), ("application/json", "gsma/rsp/v2.5.0")]:
            async with http.post(url, json=body, headers={"Content-Type": content_type, "X-Admin-Protocol": protocol}) as response:
                answer = await response.json(content_type=None)
                assert response.status == 200 and answer["header"]["functionExecutionStatus"]["status"] == "Executed-Success"
                assert response.headers["X-Admin-Protocol"] == protocol


async def test_enable_disable_delete_notifications_are_verified_and_recorded(server: RunningServer, tmp_path: Path) -> None:
    from smdp.lpa import es10
    from smdp.lpa.download import process_notifications
    from smdp.server import ensure_demo_profile

    code = str(await ensure_demo_profile(server.db, server.address))
    euicc = open_euicc(tmp_path, server.manifest)
    result = await run_download(euicc, code)
    assert result.ok
    es10.enable_profile(euicc, result.iccid)
    es10.disable_profile(euicc, result.iccid)
    es10.delete_profile(euicc, result.iccid)
    async with HookedClient() as client:
        deliveries = await process_notifications(euicc, client)
        assert [(d.event, d.delivered) for d in deliveries] == [("enable", True), ("disable", True), ("delete", True)]
        assert es10.list_notifications(euicc) == []
        # a retried delivery of the same notification is accepted (204) and recorded once
        assert await client.call(server.address, "handleNotification", client.sent["handleNotification"]) is None
    async with server.db.transaction() as db:
        events = [(n.event, n.eid, n.iccid) for n in (await db.exec(select(Notification).order_by(Notification.id))).all()]
    assert events == [(e, euicc.eid, result.iccid) for e in ("install", "enable", "disable", "delete")]
