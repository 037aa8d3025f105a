"""ASN.1 codecs (smdp.codec.asn1): SGP.22 RSPDefinitions and SAIP PEDefinitions compiled once,
with the asn1tools OBJECT IDENTIFIER and sqnInit fixes."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import asn1tools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smdp.codec.asn1 import ASN1_DIR, Asn1Error, decode_exact, rsp, saip
from smdp.codec.tlv import read_tlv, tlv
from tests.conftest import SGP26_DIR

SGP26 = SGP26_DIR

# InitialiseSecureChannelRequest cut from the Bound Profile Package of osmocom pySim,
# tests/unittests/test_esim.py, TestBSPdecode.bpp_b64 (first TLV inside 'BF36').
ISCR_PYSIM = bytes.fromhex(
    "bf2381ae8201018010df9c0ef4041a47ee9bfdcf0ab10770eda61080018881011084086d61686c7a65"
    "69745f49410428050c72ffa166c71fdc2dd13bc5691134de52ce355bbdcc896e4c40a2b3d791a66fb8"
    "71c84c8f6c7215034e250a1d5dde3939ad906307f872af6d61e4fd329c5f374077b0f81b36cf7a73ee"
    "d22f84d0c84ddc15a497ee2c15a39cb768575a5b34398655fd200f7656cb86c2766cc42631f6c370d5"
    "e16472377d53cfe3f614a7ccbaf8"
)


def test_modules_are_read_from_the_repository_asn1_directory() -> None:
    assert {"rsp.asn", "pkix.asn", "saip.asn"} <= {p.name for p in ASN1_DIR.iterdir()}


def test_specifications_are_compiled_once_per_process() -> None:
    assert rsp() is rsp()
    assert saip() is saip()


@pytest.mark.parametrize(
    ("oid", "contents"),
    [
        ("2.999.10", "88370A"),
        ("2.23.146.1.2.1.0", "67811201020100"),
        ("1.2.840.10045.3.1.7", "2A8648CE3D030107"),
        ("0.9.2342.19200300.100.1.25", "0992268993F22C640119"),
        ("2.40.0", "7800"),
        ("1.39.5", "4F05"),
    ],
)
def test_object_identifiers_round_trip_including_second_arcs_above_39_under_arc_2(
    oid: str, contents: str
) -> None:
    # ConfigureISDPRequest { dpProprietaryData [24] { dpOid [0] IMPLICIT OID } }
    encoded = rsp().encode("ConfigureISDPRequest", {"dpProprietaryData": {"dpOid": oid}})
    oid_tlv = bytes([0x80, len(bytes.fromhex(contents))]) + bytes.fromhex(contents)
    assert encoded.endswith(oid_tlv)
    assert rsp().decode("ConfigureISDPRequest", encoded)["dpProprietaryData"]["dpOid"] == oid


def test_universal_object_identifier_2_999_10_decodes_from_its_der_bytes() -> None:
    # smdpOid in ProfileInstallationResultData is untagged: '06 03 88 37 0A'.
    assert rsp().decode("AttributeType", bytes.fromhex("060388370A")) == "2.999.10"


def test_object_identifier_with_empty_contents_is_rejected() -> None:
    with pytest.raises(asn1tools.DecodeError):
        rsp().decode("DpProprietaryData", bytes.fromhex("30020600"))


def test_decode_exact_rejects_trailing_bytes() -> None:
    encoded = rsp().encode("GetEuiccChallengeResponse", {"euiccChallenge": bytes(16)})
    assert decode_exact(rsp(), "GetEuiccChallengeResponse", encoded) == {"euiccChallenge": bytes(16)}
    with pytest.raises(asn1tools.DecodeError, match="1 trailing byte"):
        decode_exact(rsp(), "GetEuiccChallengeResponse", encoded + b"\x00")


def test_initialise_secure_channel_request_known_answer_round_trips() -> None:
    value = decode_exact(rsp(), "InitialiseSecureChannelRequest", ISCR_PYSIM)
    assert value["remoteOpId"] == 1
    assert value["controlRefTemplate"] == {"keyType": b"\x88", "keyLen": b"\x10", "hostId": b"mahlzeit"}
    assert len(value["smdpOtpk"]) == 65 and len(value["smdpSign"]) == 64
    assert rsp().encode("InitialiseSecureChannelRequest", value) == ISCR_PYSIM


def _euicc_info2() -> dict[str, object]:
    return {
        "profileVersion": b"\x02\x03\x00",
        "svn": b"\x02\x02\x02",
        "euiccFirmwareVer": b"\x01\x00\x00",
        "extCardResource": bytes.fromhex("810100820400010000830200FF"),
        "uiccCapability": (b"\x06\x7f\x36\xc0", 26),
        "rspCapability": (b"\x1c", 6),
        "euiccCiPKIdListForVerification": [bytes(20)],
        "euiccCiPKIdListForSigning": [bytes(20)],
        "ppVersion": b"\x01\x00\x00",
        "sasAcreditationNumber": "TEST-SAS",
    }


def test_euicc_info2_skips_unknown_trailing_fields_of_later_versions() -> None:
    encoded = read_tlv(rsp().encode("EUICCInfo2", _euicc_info2()))
    assert encoded.tag == 0xBF22
    # A v3-era eUICC appends fields this module does not define, e.g. context tag [30].
    extended = tlv(0xBF22, encoded.value + tlv(0x9F1E, b"\x01") + tlv(0xBF1F, tlv(0x80, b"\x00")))
    decoded = decode_exact(rsp(), "EUICCInfo2", extended)
    assert decoded["sasAcreditationNumber"] == "TEST-SAS"
    assert decoded["rspCapability"] == (b"\x1c", 6)


def test_device_info_skips_unknown_trailing_capabilities() -> None:
    value = {"tac": b"\x35\x29\x06\x11", "deviceCapabilities": {"eutranEpcSupportedRelease": b"\x0f\x00\x00"}}
    encoded = read_tlv(rsp().encode("DeviceInfo", value))
    # Automatic tags: tac [0] '80', deviceCapabilities [1] 'A1', imei [2] '82'.
    capabilities = read_tlv(encoded.value, 6)
    assert capabilities.tag == 0xA1
    longer = tlv(0xA1, capabilities.value + tlv(0x9F20, b"\x11\x00\x00"))
    extended = tlv(0x30, encoded.value[:6] + longer)
    assert decode_exact(rsp(), "DeviceInfo", extended) == value


def test_store_metadata_carries_a_vendor_specific_extension_as_explicit_open_type() -> None:
    value = {
        "iccid": bytes.fromhex("98001032547698103214"),
        "serviceProviderName": "Op",
        "profileName": "P",
        "serviceSpecificDataStoredInEuicc": [
            {"vendorOid": "2.999.10.1", "vendorSpecificData": bytes.fromhex("0401AA")}
        ],
    }
    encoded = rsp().encode("StoreMetadataRequest", value)
    # BF22 { 30 { 80 <oid 2.999.10.1>, A1 { 04 01 AA } } }
    assert bytes.fromhex("BF220D300B8004883 70A01A1030401AA".replace(" ", "")) in encoded
    decoded = decode_exact(rsp(), "StoreMetadataRequest", encoded)
    assert decoded["serviceSpecificDataStoredInEuicc"] == value["serviceSpecificDataStoredInEuicc"]
    assert decoded["profileClass"] == 2  # DEFAULT operational when absent


def test_default_valued_components_decode_as_numbers_and_are_omitted_in_der() -> None:
    value = {"iccid": bytes(10), "serviceProviderName": "", "profileName": ""}
    implicit = rsp().encode("StoreMetadataRequest", value)
    explicit = rsp().encode("StoreMetadataRequest", {**value, "profileClass": 2})
    assert explicit == implicit  # X.690 11.5: a DEFAULT value is not encoded
    assert rsp().decode("StoreMetadataRequest", implicit)["profileClass"] == 2
    test_class = rsp().encode("StoreMetadataRequest", {**value, "profileClass": 0})
    assert test_class.endswith(bytes.fromhex("950100"))


def test_authenticate_client_ok_uses_context_tag_zero_inside_bf3b() -> None:
    encoded = rsp().encode("AuthenticateClientResponseEs9", ("authenticateClientError", 8))
    assert encoded == bytes.fromhex("BF3B03810108")


def test_es10_requests_encode_as_lpac_builds_them() -> None:
    # Tag layouts of estkme-group/lpac euicc/es10c.c es10c_get_eid, euicc/es10b.c
    # es10b_retrieve_notifications_list and es10b_authenticate_server (ctxParams1).
    assert rsp().encode("GetEuiccDataRequest", {"tagList": b"\x5a"}) == bytes.fromhex("BF3E035C015A")
    request = {"searchCriteria": ("seqNumber", 5)}
    assert rsp().encode("RetrieveNotificationsListRequest", request) == bytes.fromhex("BF2B05A003800105")
    device = {"tac": b"\x35\x29\x06\x11", "deviceCapabilities": {}, "imei": bytes(8)}
    context = ("ctxParamsForCommonAuthentication", {"matchingId": "A", "deviceInfo": device})
    assert rsp().encode("CtxParams1", context) == bytes.fromhex(
        "A017800141A112800435290611A100820800000000000000 00".replace(" ", "")
    )


def test_tag_on_a_tagged_choice_reference_replaces_its_tag() -> None:
    # X.680 31.2.7: "[56] AuthenticateServerResponse" with "AuthenticateServerResponse ::=
    # [56] CHOICE" is implicit, so a single 'BF38' (asn1tools alone doubled it).
    error = ("authenticateResponseError", {"transactionId": b"\x01", "authenticateErrorCode": 1})
    value = {"transactionId": b"\x01", "authenticateServerResponse": error}
    encoded = rsp().encode("AuthenticateClientRequest", value)
    assert encoded == bytes.fromhex("BF3B0E800101BF3808A106800101020101")
    assert rsp().decode("AuthenticateClientRequest", encoded) == value
    response = ("initiateAuthenticationResponse", ("initiateAuthenticationError", 1))
    assert rsp().encode("RemoteProfileProvisioningResponse", response) == bytes.fromhex("A206BF3903810101")


def test_automatic_tag_on_a_tagged_choice_reference_is_implicit() -> None:
    # CancelSessionRequestEs9 is automatically tagged; [1] replaces CancelSessionResponse's
    # own [65], so the ES10b response travels as 'A1', not 'A1 BF41'.
    value = {"transactionId": b"\x01", "cancelSessionResponse": ("cancelSessionResponseError", 5)}
    encoded = rsp().encode("CancelSessionRequestEs9", value)
    assert encoded == bytes.fromhex("BF4108800101A103810105")
    assert rsp().decode("CancelSessionRequestEs9", encoded) == value


def test_unknown_choice_alternative_decodes_as_none_and_must_be_rejected_by_callers() -> None:
    # EXTENSIBILITY IMPLIED: a tag outside the CHOICE is skipped, not an error.
    assert rsp().decode("PendingNotification", tlv(0xBF3F, b"")) == (None, None)


def test_sqn_init_default_means_32_zero_sqns_and_is_omitted_on_encode() -> None:
    value = {
        "aka-header": {"identification": 1},
        "algoConfiguration": ("algoParameter", {
            "algorithmID": 1, "algorithmOptions": b"\x00", "key": bytes(16), "opc": bytes(16),
        }),
    }
    encoded = saip().encode("ProfileElement", ("akaParameter", value))
    name, decoded = saip().decode("ProfileElement", encoded)
    assert name == "akaParameter"
    assert decoded["sqnInit"] == [bytes(6)] * 32
    assert saip().encode("ProfileElement", (name, decoded)) == encoded


@contextmanager
def _fails_after(seconds: int) -> Iterator[None]:
    """Turn a hang into a test failure (asn1tools used to loop forever on some input)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"decoding did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_wrong_tag_inside_a_sequence_of_is_a_decode_error_not_a_hang() -> None:
    # EUICCInfo1 whose euiccCiPKIdListForVerification holds a NULL instead of an OCTET STRING.
    data = bytes.fromhex("BF200B82030202 00A9020500AA00".replace(" ", ""))
    with _fails_after(5), pytest.raises(asn1tools.DecodeError, match="unexpected tag 0500"):
        rsp().decode("EUICCInfo1", data)


def test_sequence_of_element_running_past_its_end_is_a_decode_error() -> None:
    # The list 'A9 02' holds '04 03', whose three value bytes lie outside the list.
    data = bytes.fromhex("BF200E82030202 00A9020403AABBCC AA00".replace(" ", ""))
    with pytest.raises(asn1tools.DecodeError, match="runs past the end"):
        rsp().decode("EUICCInfo1", data)


def test_invalid_utf8_and_invalid_time_are_decode_errors() -> None:
    metadata = bytes.fromhex("BF25105A0A00000000000000000000 9100 9200".replace(" ", ""))
    assert decode_exact(rsp(), "StoreMetadataRequest", metadata)["profileName"] == ""
    broken_name = bytes.fromhex("BF25115A0A00000000000000000000 9101FF 9200".replace(" ", ""))
    with pytest.raises(asn1tools.DecodeError, match="serviceProviderName: invalid UTF8String"):
        decode_exact(rsp(), "StoreMetadataRequest", broken_name)
    with pytest.raises(asn1tools.DecodeError, match="invalid UTCTime"):
        rsp().decode("ExpirationDate", bytes.fromhex("17043239D731"))


def _authenticate_client_request() -> bytes:
    info2 = _euicc_info2()
    context = ("ctxParamsForCommonAuthentication", {
        "matchingId": "MATCHING-ID-1",
        "deviceInfo": {"tac": b"\x35\x29\x06\x11", "deviceCapabilities": {}},
    })
    signed = {
        "transactionId": bytes(16), "serverAddress": "smdp.example", "serverChallenge": bytes(16),
        "euiccInfo2": info2, "ctxParams1": context,
    }
    certificate = {
        "tbsCertificate": {
            "version": 2, "serialNumber": 1,
            "signature": {"algorithm": "1.2.840.10045.4.3.2"},
            "issuer": ("rdnSequence", [[{"type": "2.5.4.3", "value": bytes.fromhex("0C0141")}]]),
            "validity": {
                "notBefore": ("utcTime", datetime(2020, 1, 1, tzinfo=UTC)),
                "notAfter": ("utcTime", datetime(2030, 1, 1, tzinfo=UTC)),
            },
            "subject": ("rdnSequence", []),
            "subjectPublicKeyInfo": {"algorithm": {"algorithm": "1.2.840.10045.2.1"}, "subjectPublicKey": (bytes(65), 520)},
            "extensions": [{"extnID": "2.5.29.14", "extnValue": bytes.fromhex("0414") + bytes(20)}],
        },
        "signatureAlgorithm": {"algorithm": "1.2.840.10045.4.3.2"},
        "signature": (bytes(70), 560),
    }
    response = ("authenticateResponseOk", {
        "euiccSigned1": signed, "euiccSignature1": bytes(64),
        "euiccCertificate": certificate, "eumCertificate": certificate,
    })
    return rsp().encode("AuthenticateClientRequest", {"transactionId": bytes(16), "authenticateServerResponse": response})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decoding_a_corrupted_message_either_succeeds_or_raises_an_asn1_error(data: st.DataObject) -> None:
    message = bytearray(_authenticate_client_request())
    for _ in range(data.draw(st.integers(1, 3))):
        message[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
    with _fails_after(5), suppress(Asn1Error):
        decode_exact(rsp(), "AuthenticateClientRequest", bytes(message))


def _sgp26_certificates() -> list[Path]:
    if not SGP26.is_dir():
        return []
    return sorted(SGP26.rglob("CERT_*.der"))


@pytest.mark.skipif(not SGP26.is_dir(), reason=f"GSMA SGP.26 test certificates not found at {SGP26}")
@pytest.mark.parametrize("path", _sgp26_certificates(), ids=lambda p: p.name)
def test_sgp26_certificates_decode_and_re_encode_byte_identically(path: Path) -> None:
    der = path.read_bytes()
    value = decode_exact(rsp(), "Certificate", der)
    assert rsp().encode("Certificate", value) == der


@pytest.mark.skipif(not SGP26.is_dir(), reason=f"GSMA SGP.26 test certificates not found at {SGP26}")
def test_sgp26_dpauth_certificate_keeps_sm_dp_plus_oid_bytes() -> None:
    der = (SGP26 / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der").read_bytes()
    value = decode_exact(rsp(), "Certificate", der)
    extensions = {e["extnID"]: e["extnValue"] for e in value["tbsCertificate"]["extensions"]}
    # subjectAltName registeredID 2.999.10 (SGP.26 test SM-DP+ OID): [8] 88 37 0A
    assert bytes.fromhex("8803883 70A".replace(" ", "")) in extensions["2.5.29.17"]
