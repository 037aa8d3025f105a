"""Negative cases of the ES9+ download, each answered with its SGP.22 subjectCode/reasonCode."""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path

import pytest
from sqlmodel import select

from smdp.codec import asn1
from smdp.codec.b64 import b64decode, b64encode
from smdp.lpa import es10
from smdp.pki.eid import random_eid
from smdp.services.profiles import import_profile
from smdp.store.tables import DownloadSession, Notification, Profile
from tests.conftest import RunningServer
from tests.device_tools import demo_iccid, demo_package
from tests.es9_tools import (
    PAST,
    HookedClient,
    body_resigner,
    codes,
    crafted_euicc_manifest,
    euicc_key,
    open_euicc,
    run_download,
)


@pytest.fixture
async def profile_code(server: RunningServer) -> str:
    await import_profile(server.db, demo_package(demo_iccid()), matching_id="NEG-1")
    return f"LPA:1${server.address}$NEG-1"


async def _state(server: RunningServer, matching_id: str = "NEG-1") -> str:
    async with server.db.transaction() as db:
        return (await db.exec(select(Profile.state).where(Profile.matching_id == matching_id))).one()


async def test_unknown_matching_id_is_refused(server: RunningServer, tmp_path: Path) -> None:
    result = await run_download(open_euicc(tmp_path, server.manifest), f"LPA:1${server.address}$NO-SUCH-ID")
    assert result.stage == "authenticateClient" and codes(result) == ("8.2.6", "3.8")


async def test_unknown_and_replayed_transaction_ids_are_refused(server: RunningServer, tmp_path: Path, profile_code: str) -> None:
    client = HookedClient()
    assert (await run_download(open_euicc(tmp_path, server.manifest), profile_code, client)).ok
    replay = dict(client.sent["authenticateClient"])
    for body in (replay, {**replay, "transactionId": os.urandom(16).hex().upper()}):
        answer = await _raw(client, server, "authenticateClient", body)
        assert answer == ("8.10.1", "3.9")
    answer = await _raw(client, server, "getBoundProfilePackage", dict(client.sent["getBoundProfilePackage"]))
    assert answer == ("8.10.1", "3.9")
    await client.close()


async def _raw(client: HookedClient, server: RunningServer, function: str, body: dict) -> tuple[str, str] | None:
    from smdp.lpa.es9client import Es9Error

    try:
        await client.call(server.address, function, body)
    except Es9Error as exc:
        return exc.subject_code, exc.reason_code
    return None


async def test_server_challenge_mismatch_is_refused(server: RunningServer, tmp_path: Path, profile_code: str) -> None:
    client = HookedClient()

    def other_challenge(value: dict) -> None:
        value["serverChallenge"] = os.urandom(16)

    client.request_hooks["authenticateClient"] = body_resigner(
        "authenticateServerResponse", euicc_key(server.manifest), "EuiccSigned1", mutate=other_challenge
    )
    result = await run_download(open_euicc(tmp_path, server.manifest), profile_code, client)
    await client.close()
    assert codes(result) == ("8.1", "6.1")


async def test_bad_euicc_signature1_is_refused(server: RunningServer, tmp_path: Path, profile_code: str) -> None:
    client = HookedClient()
    client.request_hooks["authenticateClient"] = body_resigner(
        "authenticateServerResponse", euicc_key(server.manifest), "EuiccSigned1", corrupt_signature=True
    )
    result = await run_download(open_euicc(tmp_path, server.manifest), profile_code, client)
    await client.close()
    assert codes(result) == ("8.1", "6.1")
    assert await _state(server) == "Released"


async def test_bad_euicc_signature2_is_refused(server: RunningServer, tmp_path: Path, profile_code: str) -> None:
    client = HookedClient()
    client.request_hooks["getBoundProfilePackage"] = body_resigner(
        "prepareDownloadResponse", euicc_key(server.manifest), "EUICCSigned2", client, corrupt_signature=True
    )
    result = await run_download(open_euicc(tmp_path, server.manifest), profile_code, client)
    await client.close()
    assert result.stage == "getBoundProfilePackage" and codes(result) == ("8.1", "6.1")
    assert await _state(server) == "Released"


@pytest.mark.parametrize(
    "crafted,expected",
    [
        ({"eum_validity": PAST}, ("8.1.2", "6.3")),
        ({"euicc_validity": PAST}, ("8.1.3", "6.3")),
        ({"eid": "89049033" + "0" * 22 + "00"}, ("8.1.3", "6.1")),  # EID outside the EUM's EIN 89049032
        ({"eum_validity": PAST, "eid": "89049033" + "0" * 22 + "00"}, ("8.1.2", "6.3")),  # expiry before range
    ],
    ids=["expired-eum", "expired-euicc", "eid-outside-eum-range", "expiry-before-range"],
)
async def test_bad_euicc_certificates_are_refused(server: RunningServer, tmp_path: Path, crafted: dict, expected: tuple) -> None:
    manifest = crafted_euicc_manifest(tmp_path / "crafted", server.manifest, **crafted)
    # an unknown matching ID too: certificate problems are reported first
    result = await run_download(open_euicc(tmp_path, manifest), f"LPA:1${server.address}$NO-SUCH-ID")
    assert result.stage == "authenticateClient" and codes(result) == expected


async def test_euicc_certificate_from_unknown_ci_is_refused(server: RunningServer, tmp_path: Path) -> None:
    """A (lying) eUICC presents an EUM/eUICC chain issued by a CI the SM-DP+ doesn't know."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from smdp.pki.store import load_euicc_credentials

    foreign = load_euicc_credentials(crafted_euicc_manifest(tmp_path / "foreign", server.manifest, foreign_ci=True), "nist")
    chain = (foreign.euicc_cert.public_bytes(Encoding.DER), foreign.eum_cert.public_bytes(Encoding.DER))
    client = HookedClient()
    client.request_hooks["authenticateClient"] = body_resigner(
        "authenticateServerResponse", foreign.euicc_key, "EuiccSigned1", certificates=chain
    )
    result = await run_download(open_euicc(tmp_path, server.manifest), f"LPA:1${server.address}$NO-SUCH-ID", client)
    await client.close()
    assert result.stage == "authenticateClient" and codes(result) == ("8.11.1", "3.9")


async def test_profile_bound_to_another_eid_is_refused(server: RunningServer, tmp_path: Path) -> None:
    await import_profile(server.db, demo_package(demo_iccid()), matching_id="BOUND-1", eid=random_eid("89049032"))
    result = await run_download(open_euicc(tmp_path, server.manifest), f"LPA:1${server.address}$BOUND-1")
    assert codes(result) == ("8.1.1", "3.8")


async def test_confirmation_code_right_wrong_and_missing(server: RunningServer, tmp_path: Path) -> None:
    await import_profile(server.db, demo_package(demo_iccid()), matching_id="CC-1", confirmation_code="1234")
    code = f"LPA:1${server.address}$CC-1"
    euicc = open_euicc(tmp_path, server.manifest)
    wrong = await run_download(euicc, code, confirmation_code="9999")
    assert wrong.stage == "getBoundProfilePackage" and codes(wrong) == ("8.2.7", "3.8")

    client = HookedClient()  # a misbehaving eUICC that drops hashCc from euiccSigned2

    def drop_hash_cc(value: dict) -> None:
        value.pop("hashCc", None)

    client.request_hooks["getBoundProfilePackage"] = body_resigner(
        "prepareDownloadResponse", euicc_key(server.manifest), "EUICCSigned2", client, mutate=drop_hash_cc
    )
    missing = await run_download(euicc, code, client, confirmation_code="1234")
    await client.close()
    assert codes(missing) == ("8.2.7", "2.2")

    right = await run_download(euicc, code, confirmation_code="1234")
    assert right.ok, right.to_json()


async def test_confirmation_code_blocks_after_too_many_wrong_attempts(server: RunningServer, tmp_path: Path) -> None:
    await import_profile(server.db, demo_package(demo_iccid()), matching_id="CC-2", confirmation_code="1234")
    code = f"LPA:1${server.address}$CC-2"
    euicc = open_euicc(tmp_path, server.manifest)
    outcomes = [codes(await run_download(euicc, code, confirmation_code="0000")) for _ in range(3)]
    assert outcomes == [("8.2.7", "3.8"), ("8.2.7", "3.8"), ("8.2.7", "6.4")]
    blocked = await run_download(euicc, code, confirmation_code="1234")
    assert codes(blocked) == ("8.2.7", "6.4")


async def test_cancel_session_mid_flow_ends_the_session(server: RunningServer, tmp_path: Path, profile_code: str) -> None:
    euicc = open_euicc(tmp_path, server.manifest)
    cancelled = await run_download(euicc, profile_code, cancel_at="authenticateClient")
    assert not cancelled.ok and cancelled.cancel_reason == "endUserRejection", cancelled.to_json()
    async with server.db.transaction() as db:
        step = (
            await db.exec(select(DownloadSession.step).where(DownloadSession.transaction_id == cancelled.transaction_id))
        ).one()
    assert step == "cancelled"
    assert await _state(server) == "Released"
    assert (await run_download(euicc, profile_code)).ok  # the order is still there


async def test_cancel_session_with_wrong_smdp_oid_is_refused(server: RunningServer, tmp_path: Path, profile_code: str) -> None:
    euicc = open_euicc(tmp_path, server.manifest)
    client = HookedClient()

    def other_oid(value: dict) -> None:
        value["smdpOid"] = "2.999.99"

    client.request_hooks["cancelSession"] = body_resigner(
        "cancelSessionResponse", euicc_key(server.manifest), "EuiccCancelSessionSigned", mutate=other_oid
    )
    result = await run_download(euicc, profile_code, client, cancel_at="authenticateClient")
    await client.close()
    assert "cancelSession" in client.sent and client.received.get("cancelSession") is None  # refused
    async with HookedClient() as raw:
        assert await _raw(raw, server, "cancelSession", client.sent["cancelSession"]) == ("8.8", "3.10")
    async with server.db.transaction() as db:
        step = (
            await db.exec(select(DownloadSession.step).where(DownloadSession.transaction_id == result.transaction_id))
        ).one()
    assert step == "authenticated"  # a refused cancel changes nothing


async def test_tampered_bpp_segment_is_rejected_by_the_euicc_and_reported(
    server: RunningServer, tmp_path: Path, profile_code: str
) -> None:
    client = HookedClient()

    def tamper(answer: dict) -> dict:
        bpp = bytearray(b64decode(answer["boundProfilePackage"]))
        bpp[len(bpp) // 2] ^= 0x01
        return {**answer, "boundProfilePackage": b64encode(bytes(bpp))}

    client.response_hooks["getBoundProfilePackage"] = tamper
    euicc = open_euicc(tmp_path, server.manifest)
    result = await run_download(euicc, profile_code, client)
    await client.close()
    assert not result.ok and result.error_reason == "scp03tSecurityError", result.to_json()
    assert euicc.installed_profiles() == []
    async with server.db.transaction() as db:
        note = (await db.exec(select(Notification))).one()
        step = (
            await db.exec(select(DownloadSession.step).where(DownloadSession.transaction_id == result.transaction_id))
        ).one()
    assert note.event == "install" and note.success is False and note.detail["result"] == "error"
    assert step == "failed"


def _initiate_body(euicc, address: str, info1: bytes | None = None) -> dict:  # type: ignore[no-untyped-def]
    return {
        "euiccChallenge": b64encode(es10.get_euicc_challenge(euicc)),
        "euiccInfo1": b64encode(info1 or es10.get_euicc_info1(euicc)),
        "smdpAddress": address,
    }


async def test_initiate_authentication_refusals(server: RunningServer, tmp_path: Path) -> None:
    euicc = open_euicc(tmp_path, server.manifest)
    info1 = asn1.rsp().decode("EUICCInfo1", es10.get_euicc_info1(euicc))
    async with HookedClient() as client:
        assert await _raw(client, server, "initiateAuthentication", _initiate_body(euicc, "smdp.example.com")) == ("8.8.1", "3.8")
        port = server.address.rsplit(":", 1)[1]
        assert await _raw(client, server, "initiateAuthentication", _initiate_body(euicc, f"LOCALHOST:{port}")) is None
        v3 = asn1.rsp().encode("EUICCInfo1", {**info1, "svn": b"\x03\x00\x00"})
        assert await _raw(client, server, "initiateAuthentication", _initiate_body(euicc, server.address, v3)) == ("8.8.3", "3.1")
        unknown = {**info1, "euiccCiPKIdListForVerification": [os.urandom(20)], "euiccCiPKIdListForSigning": [os.urandom(20)]}
        body = _initiate_body(euicc, server.address, asn1.rsp().encode("EUICCInfo1", unknown))
        assert await _raw(client, server, "initiateAuthentication", body) == ("8.8.2", "3.1")


async def test_expired_sessions_are_closed_and_refused(server: RunningServer, tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    async with HookedClient() as client:  # a session abandoned after initiateAuthentication
        await client.call(server.address, "initiateAuthentication", _initiate_body(open_euicc(tmp_path, server.manifest), server.address))
    async with server.db.transaction() as db:
        for row in (await db.exec(select(DownloadSession))).all():
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            db.add(row)
    assert await server.download.expire_sessions() == 1
    async with server.db.transaction() as db:
        rows = (await db.exec(select(DownloadSession))).all()
    assert [(r.step, r.status_code) for r in rows] == [("failed", "expired")]
    async with HookedClient() as raw:
        body = {"transactionId": rows[0].transaction_id, "authenticateServerResponse": "MAA="}
        assert await _raw(raw, server, "authenticateClient", body) == ("8.10.1", "3.9")
