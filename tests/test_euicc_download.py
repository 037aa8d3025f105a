"""Virtual eUICC, download side: ES10b.AuthenticateServer, PrepareDownload, CancelSession and
LoadBoundProfilePackage (SGP.22 5.7.13, 5.7.5, 5.7.14, 5.7.6) against a fake SM-DP+."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from test_euicc_fakes import (  # noqa: F401 - euicc_pki is a fixture
    World,
    authenticate,
    bpp_for,
    challenge,
    decode,
    demo_profile,
    euicc_pki,
    install,
    make_iccid,
    new_world,
    prepare,
)

from smdp.codec import asn1
from smdp.codec.tlv import iter_tlvs, read_tlv, tlv
from smdp.crypto import ecdsa
from smdp.crypto.cc import confirmation_code_hash
from smdp.crypto.ecdsa import Curve
from smdp.euicc import EuiccCommandError
from smdp.pki.issue import issue_ci, issue_dpauth
from smdp.profiles.saip import split_profile_elements
from smdp.rsp.es10b import segment_bpp


@pytest.fixture(params=["nist", "brainpool"])
def world(request: pytest.FixtureRequest, euicc_pki: Path, tmp_path: Path) -> World:
    return new_world(euicc_pki, tmp_path, request.param)


@pytest.fixture
def nist(euicc_pki: Path, tmp_path: Path) -> World:
    return new_world(euicc_pki, tmp_path, "nist")


def auth_error(world: World, request: bytes) -> int:
    kind, value = decode("AuthenticateServerResponse", world.euicc.process(request))
    assert kind == "authenticateResponseError"
    assert value["transactionId"] == world.server.transaction_id
    return value["authenticateErrorCode"]


def download_error(world: World, request: bytes) -> int:
    kind, value = decode("PrepareDownloadResponse", world.euicc.process(request))
    assert kind == "downloadResponseError"
    return value["downloadErrorCode"]


def error_result(pir: bytes) -> tuple[int, int]:
    data = decode("ProfileInstallationResult", pir)["profileInstallationResultData"]
    kind, value = data["finalResult"]
    assert kind == "errorResult", value
    return value["bppCommandId"], value["errorReason"]


def rebuild(bpp: bytes, sequence_tag: int, edit) -> bytes:
    """Apply ``edit`` to the list of segments inside one sequence of the BPP, keeping DER lengths right."""
    parts = [t for t in iter_tlvs(read_tlv(bpp).value)]
    out = b""
    for part in parts:
        if part.tag == sequence_tag:
            segments = edit([s.raw for s in iter_tlvs(part.value)])
            out += tlv(part.tag, b"".join(segments))
        else:
            out += part.raw
    return tlv(0xBF36, out)


# --- AuthenticateServer ---------------------------------------------------------------------------


def test_authenticate_server_signs_euicc_signed1_copying_server_values(world: World) -> None:
    euicc_challenge = challenge(world.euicc)
    request = world.server.authenticate_server_request(euicc_challenge, matching_id="AB-12")
    signed1 = world.server.accept_authenticate_server(world.euicc.process(request))
    assert signed1["transactionId"] == world.server.transaction_id
    assert signed1["serverAddress"] == world.server.address
    assert signed1["serverChallenge"] == world.server.server_challenge
    assert signed1["ctxParams1"][1]["matchingId"] == "AB-12"
    assert signed1["euiccInfo2"]["svn"] == bytes([2, 2, 2])


def test_authenticate_server_copies_ctx_params1_byte_for_byte(nist: World) -> None:
    request = nist.server.authenticate_server_request(challenge(nist.euicc))
    ctx_in = list(iter_tlvs(read_tlv(request).value))[-1].raw
    ok = read_tlv(read_tlv(nist.euicc.process(request)).value)
    euicc_signed1 = next(iter_tlvs(ok.value))
    assert euicc_signed1.value.endswith(ctx_in)


def test_authenticate_server_rejects_bad_server_signature1(world: World) -> None:
    request = world.server.authenticate_server_request(challenge(world.euicc), tamper_signature=True)
    assert auth_error(world, request) == 2  # invalidSignature


def test_authenticate_server_rejects_wrong_euicc_challenge(world: World) -> None:
    issued = challenge(world.euicc)
    request = world.server.authenticate_server_request(bytes(b ^ 0xFF for b in issued))
    assert auth_error(world, request) == 6  # euiccChallengeMismatch


def test_authenticate_server_without_challenge_has_no_session_context(nist: World) -> None:
    request = nist.server.authenticate_server_request(bytes(16))
    assert auth_error(nist, request) == 4  # noSessionContext


def test_authenticate_server_rejects_ci_not_supported_for_signing(nist: World) -> None:
    request = nist.server.authenticate_server_request(challenge(nist.euicc), ci_pkid=bytes(20))
    assert auth_error(nist, request) == 7  # ciPKUnknown


def test_authenticate_server_rejects_dpauth_from_unknown_ci(nist: World) -> None:
    other_ci, other_key = issue_ci(Curve.NIST_P256, common_name="Some other CI")
    cert, key = issue_dpauth(other_ci, other_key, smdp_oid="2.999.10", curve=Curve.NIST_P256)
    request = nist.server.authenticate_server_request(challenge(nist.euicc), certificate=cert, key=key)
    assert auth_error(nist, request) == 7  # ciPKUnknown


def test_authenticate_server_rejects_dpauth_with_wrong_role(world: World) -> None:
    # A DPpb certificate (id-rspRole-dp-pb) from the right CI, with its matching key, in place of DPauth
    chain = world.server.chain
    request = world.server.authenticate_server_request(
        challenge(world.euicc), certificate=chain.dppb_cert, key=chain.dppb_key
    )
    assert auth_error(world, request) == 1  # invalidCertificate


def test_authenticate_server_rejects_expired_dpauth(euicc_pki: Path, tmp_path: Path) -> None:
    later = datetime.now(UTC) + timedelta(days=365 * 40)  # past every test certificate
    world = new_world(euicc_pki, tmp_path, "nist", clock=lambda: later)
    assert auth_error(world, world.server.authenticate_server_request(challenge(world.euicc))) == 1


def test_authenticate_server_rejects_garbage_as_a_command_error(nist: World) -> None:
    with pytest.raises(EuiccCommandError):
        nist.euicc.process(bytes.fromhex("BF3803800100"))


# --- PrepareDownload ------------------------------------------------------------------------------


def test_prepare_download_returns_one_time_key_signed_over_smdp_signature2(world: World) -> None:
    authenticate(world)
    signed2 = prepare(world)
    assert signed2["transactionId"] == world.server.transaction_id
    curve = Curve.of(world.server.chain.dppb_key)
    ecdsa.public_key_from_bytes(curve, signed2["euiccOtpk"])  # a valid point on the session's curve
    assert "hashCc" not in signed2


def test_prepare_download_rejects_bad_smdp_signature2(world: World) -> None:
    authenticate(world)
    assert download_error(world, world.server.prepare_download_request(tamper_signature=True)) == 2


def test_prepare_download_rejects_missing_confirmation_code(nist: World) -> None:
    authenticate(nist)
    assert download_error(nist, nist.server.prepare_download_request(cc_required=True)) == 127


def test_prepare_download_passes_hash_cc_through(nist: World) -> None:
    authenticate(nist)
    hash_cc = confirmation_code_hash(b"1234", nist.server.transaction_id)  # the eUICC only forwards it
    signed2 = prepare(nist, cc_required=True, hash_cc=hash_cc)
    assert signed2["hashCc"] == hash_cc


def test_prepare_download_rejects_other_transaction_id(nist: World) -> None:
    authenticate(nist)
    request = nist.server.prepare_download_request(transaction_id=b"\x01" * 16)
    assert download_error(nist, request) == 5  # invalidTransactionId


def test_prepare_download_rejects_dpauth_in_place_of_dppb(nist: World) -> None:
    authenticate(nist)
    request = nist.server.prepare_download_request(certificate=nist.server.chain.dpauth_cert)
    assert download_error(nist, request) == 1  # invalidCertificate


def test_prepare_download_before_authentication_has_no_session_context(nist: World) -> None:
    challenge(nist.euicc)
    assert download_error(nist, nist.server.prepare_download_request()) == 4


# --- LoadBoundProfilePackage ----------------------------------------------------------------------------


def test_load_bpp_installs_profile_elements_byte_identical(world: World) -> None:
    iccid = make_iccid(1)
    profile = demo_profile(iccid)
    authenticate(world)
    signed2 = prepare(world)
    pir = world.euicc.load_bound_profile_package(bpp_for(world, signed2, iccid, profile=profile))

    result = decode("ProfileInstallationResult", pir)
    data = result["profileInstallationResultData"]
    assert data["transactionId"] == world.server.transaction_id
    assert data["smdpOid"] == world.server.oid
    assert data["notificationMetadata"]["notificationAddress"] == world.server.address
    kind, success = data["finalResult"]
    assert kind == "successResult"
    # euiccSignPIR covers the whole ProfileInstallationResultData TLV
    data_tlv = next(iter_tlvs(read_tlv(pir).value)).raw
    euicc_key = x509.load_der_x509_certificate(world.euicc.sessions.euicc_certificate).public_key()
    ecdsa.verify(euicc_key, data_tlv, result["euiccSignPIR"])

    [installed] = world.euicc.installed_profiles()
    assert installed.iccid == iccid and installed.state == "disabled"
    assert installed.isdp_aid == success["aid"].hex().upper()
    assert installed.elements == split_profile_elements(profile)
    assert installed.package == profile
    assert [n.event for n in world.euicc.pending_notifications()] == ["install"]
    assert world.euicc.pending_notifications()[0].der == pir


def test_load_bpp_streams_as_lpa_segments_with_empty_intermediate_answers(nist: World) -> None:
    iccid = make_iccid(2)
    authenticate(nist)
    bpp = bpp_for(nist, prepare(nist), iccid)
    chunks = segment_bpp(bpp)
    answers = [nist.euicc.process(chunk) for chunk in chunks]
    assert all(a == b"" for a in answers[:-1])
    assert decode("ProfileInstallationResult", answers[-1])["profileInstallationResultData"]["finalResult"][0] == (
        "successResult"
    )


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda s: [s[0], bytes([s[1][0]]) + s[1][1:-1] + bytes([s[1][-1] ^ 1]), *s[2:]], id="tampered"),
        pytest.param(lambda s: [s[1], s[0], *s[2:]], id="reordered"),
        pytest.param(lambda s: s[1:], id="dropped"),
        pytest.param(lambda s: [s[0], s[0], *s[1:]], id="replayed"),
    ],
)
def test_load_bpp_rejects_bad_profile_segment_with_scp03t_security_error(nist: World, edit) -> None:
    iccid = make_iccid(3)
    profile = demo_profile(iccid)
    assert len(profile) > 1007  # at least two '86' segments
    authenticate(nist)
    bpp = rebuild(bpp_for(nist, prepare(nist), iccid, profile=profile), 0xA3, edit)
    pir = nist.euicc.load_bound_profile_package(bpp)
    assert error_result(pir) == (5, 8)  # loadProfileElements, scp03tSecurityError
    assert nist.euicc.installed_profiles() == []
    assert [n.event for n in nist.euicc.pending_notifications()] == ["install"]


def test_load_bpp_rejects_tampered_store_metadata(nist: World) -> None:
    iccid = make_iccid(4)
    authenticate(nist)
    bpp = rebuild(bpp_for(nist, prepare(nist), iccid), 0xA1, lambda s: [s[0][:-9] + bytes([s[0][-9] ^ 1]) + s[0][-8:]])
    assert error_result(nist.euicc.load_bound_profile_package(bpp)) == (2, 8)  # storeMetadata


def test_load_bpp_rejects_bad_smdp_sign(world: World) -> None:
    iccid = make_iccid(5)
    authenticate(world)
    pir = world.euicc.load_bound_profile_package(bpp_for(world, prepare(world), iccid, tamper_sign=True))
    assert error_result(pir) == (0, 2)  # initialiseSecureChannel, invalidSignature


def test_load_bpp_refuses_an_iccid_already_installed(nist: World) -> None:
    iccid = make_iccid(6)
    install(nist, iccid)
    pir = install(nist, iccid)
    assert error_result(pir) == (2, 9)  # storeMetadata, installFailedDueToIccidAlreadyExistsOnEuicc
    assert len(nist.euicc.installed_profiles()) == 1


def test_load_bpp_refuses_profile_whose_iccid_differs_from_metadata(nist: World) -> None:
    authenticate(nist)
    bpp = bpp_for(nist, prepare(nist), make_iccid(7), profile=demo_profile(make_iccid(8)))
    assert error_result(nist.euicc.load_bound_profile_package(bpp)) == (5, 13)  # installFailedDueToDataMismatch


def test_load_bpp_refuses_forbidden_profile_policy_rules(euicc_pki: Path, tmp_path: Path) -> None:
    world = new_world(euicc_pki, tmp_path, "nist", forbidden_pprs=["ppr1"])
    assert decode("EUICCInfo2", world.euicc.euicc_info2())["forbiddenProfilePolicyRules"] == (b"\x40", 2)
    pir = install(world, make_iccid(9), profilePolicyRules=(b"\x40", 2))
    assert error_result(pir) == (2, 15)  # storeMetadata, pprNotAllowed


def test_load_bpp_with_replace_session_keys(world: World) -> None:
    iccid = make_iccid(10)
    authenticate(world)
    pir = world.euicc.load_bound_profile_package(bpp_for(world, prepare(world), iccid, replace_session_keys=True))
    data = decode("ProfileInstallationResult", pir)["profileInstallationResultData"]
    assert data["finalResult"][0] == "successResult"
    assert world.euicc.installed_profiles()[0].package == demo_profile(iccid)


def test_failed_install_keeps_one_time_key_for_download_retry(nist: World) -> None:
    iccid = make_iccid(11)
    authenticate(nist)
    first = prepare(nist)
    bad = rebuild(bpp_for(nist, first, iccid), 0xA3, lambda s: [*s[:-1], s[-1][:-1] + bytes([s[-1][-1] ^ 1])])
    assert error_result(nist.euicc.load_bound_profile_package(bad))[1] == 8
    authenticate(nist)
    retry = prepare(nist, bpp_euicc_otpk=first["euiccOtpk"])
    assert retry["euiccOtpk"] == first["euiccOtpk"]
    nist.euicc.load_bound_profile_package(bpp_for(nist, retry, iccid))
    assert [p.iccid for p in nist.euicc.installed_profiles()] == [iccid]
    authenticate(nist)  # after a success the pair is gone: a new one is generated
    assert prepare(nist, bpp_euicc_otpk=first["euiccOtpk"])["euiccOtpk"] != first["euiccOtpk"]


def test_interrupted_bpp_load_reports_interruption(nist: World) -> None:
    iccid = make_iccid(12)
    authenticate(nist)
    chunks = segment_bpp(bpp_for(nist, prepare(nist), iccid))
    for chunk in chunks[:3]:
        assert nist.euicc.process(chunk) == b""
    nist.euicc.process(bytes.fromhex("BF2D00"))  # GetProfilesInfo in the middle
    [notification] = nist.euicc.pending_notifications()
    assert error_result(notification.der) == (2, 11)  # storeMetadata, installFailedDueToInterruption
    with pytest.raises(EuiccCommandError):
        nist.euicc.process(chunks[3])


def test_bpp_without_prepared_session_is_refused(nist: World) -> None:
    with pytest.raises(EuiccCommandError):
        nist.euicc.process(bytes.fromhex("BF3603BF2300"))


# --- CancelSession --------------------------------------------------------------------------------


def test_cancel_session_signs_reason_and_smdp_oid(world: World) -> None:
    authenticate(world)
    request = asn1.rsp().encode("CancelSessionRequest", {"transactionId": world.server.transaction_id, "reason": 1})
    response = world.euicc.process(request)
    ok = read_tlv(read_tlv(response).value)
    assert ok.tag == 0xA0
    signed, signature = [t.raw for t in iter_tlvs(ok.value)]
    euicc_key = x509.load_der_x509_certificate(world.euicc.sessions.euicc_certificate).public_key()
    ecdsa.verify(euicc_key, signed, read_tlv(signature).value)
    assert decode("EuiccCancelSessionSigned", signed) == {
        "transactionId": world.server.transaction_id,
        "smdpOid": world.server.oid,
        "reason": 1,
    }
    # the session is over: a second cancel is refused
    assert decode("CancelSessionResponse", world.euicc.process(request)) == ("cancelSessionResponseError", 5)


def test_cancel_session_rejects_other_transaction_id(nist: World) -> None:
    authenticate(nist)
    request = asn1.rsp().encode("CancelSessionRequest", {"transactionId": b"\x00" * 16, "reason": 0})
    assert decode("CancelSessionResponse", nist.euicc.process(request)) == ("cancelSessionResponseError", 5)
