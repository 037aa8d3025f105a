"""The test LPA: BPP segmentation for ES10b.LoadBoundProfilePackage (SGP.22 5.7.6), the ES9+ JSON
client (6.5) and the download flow (3.1.3) against a fake ES9+ server over HTTPS."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from test_euicc_fakes import (  # noqa: F401 - euicc_pki is a fixture
    FakeSmdp,
    World,
    authenticate,
    bpp_for,
    decode,
    demo_profile,
    euicc_pki,
    make_iccid,
    new_world,
    prepare,
    store_metadata,
)

from smdp.codec.b64 import b64decode, b64encode
from smdp.codec.tlv import iter_tlvs, read_tlv
from smdp.lpa.download import download, process_notifications
from smdp.lpa.es9client import Es9Client, Es9Error
from smdp.pki.store import load_server_credentials
from smdp.pki.tls import server_ssl_context
from smdp.rsp.es10b import segment_bpp

# --- segmentation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("replace_session_keys", [False, True])
def test_segment_bpp_cuts_as_store_data_commands(euicc_pki: Path, tmp_path: Path, replace_session_keys: bool) -> None:
    world = new_world(euicc_pki, tmp_path)
    authenticate(world)
    iccid = make_iccid(1)
    bpp = bpp_for(world, prepare(world), iccid, replace_session_keys=replace_session_keys)
    chunks = segment_bpp(bpp)
    outer = read_tlv(bpp)
    parts = {t.tag: t for t in iter_tlvs(outer.value)}
    header = bpp[: outer.end - len(outer.value)]
    expected = [header + parts[0xBF23].raw, parts[0xA0].raw, parts[0xA1].raw[: -len(parts[0xA1].value)]]
    expected += [s.raw for s in iter_tlvs(parts[0xA1].value)]
    if replace_session_keys:
        expected.append(parts[0xA2].raw)
    expected.append(parts[0xA3].raw[: -len(parts[0xA3].value)])
    expected += [s.raw for s in iter_tlvs(parts[0xA3].value)]
    assert chunks == expected
    assert b"".join(chunks) == bpp
    assert all(len(c) <= 1020 for c in chunks[2:])


def test_segment_bpp_refuses_other_data() -> None:
    with pytest.raises(ValueError):
        segment_bpp(bytes.fromhex("BF2000"))


def _smdp_imports(package: Path) -> dict[str, set[str]]:
    """The smdp modules each file of ``package`` imports, lazily (inside functions) or not."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[path.name] = {n for n in names if n.startswith("smdp.")}
    return found


@pytest.mark.parametrize(("side", "other"), [("euicc", "smdp.lpa"), ("lpa", "smdp.euicc")])
def test_the_card_and_the_device_do_not_import_each_other(side: str, other: str) -> None:
    # A real eUICC and a real LPA share only SGP.22: what both need is in smdp.rsp.es10b / smdp.codec.
    package = Path(__file__).resolve().parents[1] / "smdp" / side
    crossing = {
        name: sorted(n for n in imports if n == other or n.startswith(other + "."))
        for name, imports in _smdp_imports(package).items()
    }
    assert {name: found for name, found in crossing.items() if found} == {}


# --- a fake ES9+ server ---------------------------------------------------------------------------


@dataclass
class FakeEs9:
    """ES9+ over HTTPS, driving one FakeSmdp per session; records what the LPA sent."""

    world: World
    iccid: str = field(default_factory=lambda: make_iccid(7))
    cc_required: bool = False
    lie_about_metadata: bool = False
    fail: dict[str, tuple[str, str]] = field(default_factory=dict)  # function -> (subject, reason)
    calls: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    server: FakeSmdp | None = None

    async def handle(self, request: web.Request) -> web.Response:
        function = request.match_info["function"]
        body = await request.json()
        self.calls.append((function, body, dict(request.headers)))
        if function in self.fail:
            subject, reason = self.fail[function]
            codes = {"subjectCode": subject, "reasonCode": reason, "message": "no"}
            status = {"status": "Failed", "statusCodeData": codes}
            return web.json_response({"header": {"functionExecutionStatus": status}})
        answer = getattr(self, function)(body)
        if answer is None:
            return web.Response(status=204)
        return web.json_response({"header": {"functionExecutionStatus": {"status": "Executed-Success"}}, **answer})

    def initiateAuthentication(self, body: dict[str, Any]) -> dict[str, Any]:
        self.server = FakeSmdp(self.world.server.chain, address=body["smdpAddress"])
        signed1, signature1, pkid, cert = self.server.initiate(b64decode(body["euiccChallenge"]))
        return {
            "transactionId": self.server.transaction_id.hex().upper(),
            "serverSigned1": b64encode(signed1),
            "serverSignature1": b64encode(signature1),
            "euiccCiPKIdToBeUsed": b64encode(pkid),
            "serverCertificate": b64encode(cert),
        }

    def authenticateClient(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.server is not None
        self.server.accept_authenticate_server(b64decode(body["authenticateServerResponse"]))
        signed2, signature2, cert = self.server.offer(cc_required=self.cc_required)
        shown = store_metadata(self.iccid, profileName="shown" if self.lie_about_metadata else "Demo")
        return {
            "transactionId": body["transactionId"],
            "profileMetadata": b64encode(shown),
            "smdpSigned2": b64encode(signed2),
            "smdpSignature2": b64encode(signature2),
            "smdpCertificate": b64encode(cert),
        }

    def getBoundProfilePackage(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.server is not None
        key = x509.load_der_x509_certificate(self.world.euicc.sessions.euicc_certificate).public_key()
        signed2 = self.server.accept_prepare_download(b64decode(body["prepareDownloadResponse"]), key)
        bpp = self.server.bound_profile_package(
            eid=self.world.euicc.eid,
            euicc_otpk=signed2["euiccOtpk"],
            profile=demo_profile(self.iccid),
            metadata=store_metadata(self.iccid, profileName="Demo"),
        )
        return {"transactionId": body["transactionId"], "boundProfilePackage": b64encode(bpp)}

    def handleNotification(self, body: dict[str, Any]) -> None:
        return None

    def cancelSession(self, body: dict[str, Any]) -> dict[str, Any]:
        return {}

    def called(self, function: str) -> list[dict[str, Any]]:
        return [body for name, body, _ in self.calls if name == function]


@dataclass
class Es9Setup:
    fake: FakeEs9
    address: str
    client: Es9Client
    world: World


@pytest.fixture
async def es9(euicc_pki: Path, tmp_path: Path) -> AsyncIterator[Es9Setup]:
    world = new_world(euicc_pki, tmp_path)
    fake = FakeEs9(world)
    app = web.Application()
    app.router.add_post("/gsma/rsp2/es9plus/{function}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    credentials = load_server_credentials(euicc_pki)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(credentials))
    await site.start()
    address = f"127.0.0.1:{runner.addresses[0][1]}"
    client = Es9Client(ca_file=credentials.tls_ca_cert_path)
    yield Es9Setup(fake, address, client, world)
    await client.close()
    await runner.cleanup()


# --- the ES9+ client ------------------------------------------------------------------------------


async def test_es9_client_sends_the_sgp22_headers_and_reads_failed_status(es9: Es9Setup) -> None:
    es9.fake.fail["initiateAuthentication"] = ("8.8.1", "3.8")
    with pytest.raises(Es9Error) as failure:
        await es9.client.initiate_authentication(
            es9.address, euicc_challenge="AA==", euicc_info1="AA==", smdp_address="x"
        )
    assert (failure.value.subject_code, failure.value.reason_code, failure.value.function) == (
        "8.8.1",
        "3.8",
        "initiateAuthentication",
    )
    _, body, headers = es9.fake.calls[0]
    assert headers["X-Admin-Protocol"] == "gsma/rsp/v2.2.0"
    assert headers["Content-Type"] == "application/json;charset=UTF-8"
    assert body == {"euiccChallenge": "AA==", "euiccInfo1": "AA==", "smdpAddress": "x"}


async def test_es9_client_returns_none_for_204(es9: Es9Setup) -> None:
    assert await es9.client.call(es9.address, "handleNotification", {"pendingNotification": "AA=="}) is None


async def test_es9_client_refuses_an_untrusted_server(es9: Es9Setup, tmp_path: Path) -> None:
    async with Es9Client() as client:  # system trust store: the test CI is not in it
        with pytest.raises(Es9Error) as failure:
            await client.call(es9.address, "handleNotification", {})
    assert failure.value.subject_code is None
    async with Es9Client(insecure=True) as client:
        assert await client.call(es9.address, "handleNotification", {}) is None


# --- the download flow ----------------------------------------------------------------------------


async def test_download_installs_and_delivers_the_installation_result(es9: Es9Setup) -> None:
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$MATCH-7", client=es9.client)
    assert result.ok, result
    assert result.iccid == es9.fake.iccid and result.eid == es9.world.euicc.eid
    assert result.notification_delivered
    assert [p.iccid for p in es9.world.euicc.installed_profiles()] == [es9.fake.iccid]
    assert es9.world.euicc.pending_notifications() == []
    [notification] = es9.fake.called("handleNotification")
    pir = decode("ProfileInstallationResult", b64decode(notification["pendingNotification"]))
    assert pir["profileInstallationResultData"]["finalResult"][0] == "successResult"
    [sent] = es9.fake.called("authenticateClient")
    signed1 = decode("AuthenticateServerResponse", b64decode(sent["authenticateServerResponse"]))
    assert signed1[1]["euiccSigned1"]["ctxParams1"][1]["matchingId"] == "MATCH-7"


async def test_download_cancels_on_request_with_signed_reason(es9: Es9Setup) -> None:
    result = await download(
        es9.world.euicc,
        f"LPA:1${es9.address}$M",
        client=es9.client,
        cancel_at="prepareDownload",
        cancel_reason="postponed",
    )
    assert not result.ok and result.stage == "prepareDownload" and result.cancel_reason == "postponed"
    [cancel] = es9.fake.called("cancelSession")
    kind, ok = decode("CancelSessionResponse", b64decode(cancel["cancelSessionResponse"]))
    assert kind == "cancelSessionResponseOk"
    assert ok["euiccCancelSessionSigned"]["reason"] == 1  # postponed
    assert cancel["transactionId"] == result.transaction_id
    assert es9.fake.called("getBoundProfilePackage") == []


async def test_download_cancels_when_bpp_metadata_differs(es9: Es9Setup) -> None:
    es9.fake.lie_about_metadata = True
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$M", client=es9.client)
    assert not result.ok and result.cancel_reason == "metadataMismatch"
    assert es9.world.euicc.installed_profiles() == []
    assert len(es9.fake.called("cancelSession")) == 1


async def test_download_needs_the_confirmation_code_when_required(es9: Es9Setup) -> None:
    es9.fake.cc_required = True
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$M", client=es9.client)
    assert not result.ok and result.cancel_reason == "endUserRejection"
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$M", client=es9.client, confirmation_code="1234")
    assert result.ok, result
    [sent] = es9.fake.called("getBoundProfilePackage")
    prepared = decode("PrepareDownloadResponse", b64decode(sent["prepareDownloadResponse"]))
    assert len(prepared[1]["euiccSigned2"]["hashCc"]) == 32


async def test_download_reports_es9_errors_without_cancelling(es9: Es9Setup) -> None:
    es9.fake.fail["authenticateClient"] = ("8.2.6", "3.8")
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$NOPE", client=es9.client)
    assert (result.ok, result.stage) == (False, "authenticateClient")
    assert (result.subject_code, result.reason_code) == ("8.2.6", "3.8")
    assert es9.fake.called("cancelSession") == []


async def test_download_checks_the_activation_code_oid(es9: Es9Setup) -> None:
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$M$1.2.3.4", client=es9.client)
    assert not result.ok and result.stage == "initiateAuthentication" and "OID" in (result.message or "")
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$M$2.999.10", client=es9.client)
    assert result.ok, result


async def test_process_notifications_delivers_and_removes(es9: Es9Setup) -> None:
    es9.fake.fail["handleNotification"] = ("1.2", "4.2")
    result = await download(es9.world.euicc, f"LPA:1${es9.address}$M", client=es9.client)
    assert result.ok and not result.notification_delivered
    assert len(es9.world.euicc.pending_notifications()) == 1
    del es9.fake.fail["handleNotification"]
    deliveries = await process_notifications(es9.world.euicc, es9.client)
    assert [(d.event, d.delivered) for d in deliveries] == [("install", True)]
    assert es9.world.euicc.pending_notifications() == []
