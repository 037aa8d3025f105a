"""The ES9+ readers below the signature checks: CHOICEs asn1tools can't tell (an unknown alternative decodes
as (None, None)), notifications whose ICCID isn't EF.ICCID coded or is absent, and the DER framing of the
eUICC's signed answers.  Each malformed input is an RspError with its SGP.22 code, never another exception.

The helpers that build (unsigned) pending notifications are shared with tests/test_es9_malformed.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from smdp.codec import asn1
from smdp.codec.b64 import b64encode
from smdp.codec.bits import bit_string
from smdp.codec.tlv import iter_tlvs, read_tlv, tlv
from smdp.profiles.saip import encode_header_iccid, encode_iccid
from smdp.rsp import es9, fields
from smdp.rsp.metadata import EVENT_BITS
from smdp.rsp.session_end import parse_pending_notification
from smdp.rsp.status import INVALID_INPUT, RspError

ICCID = "8944000000000000001"  # 19 digits: EF.ICCID coding pads the last byte's high nibble with 'F'
AID = bytes.fromhex("A0000005591010FFFFFFFF8900001000")
SUCCESS = ("successResult", {"aid": AID, "simaResponse": b""})


def metadata(*, iccid: bytes | None = encode_iccid(ICCID), seq: int = 7, event: str = "install") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "seqNumber": seq,
        "profileManagementOperation": bit_string([event], EVENT_BITS),
        "notificationAddress": "smdp.example.com",
    }
    if iccid is not None:
        meta["iccid"] = iccid
    return meta


def installation_result(
    *, meta: dict[str, Any] | None = None, transaction_id: bytes = bytes(range(16)), final: tuple[str, Any] = SUCCESS
) -> bytes:
    """A PendingNotification: profileInstallationResult (BF37), its signature zeros (not verified here)."""
    data = {
        "transactionId": transaction_id,
        "notificationMetadata": metadata() if meta is None else meta,
        "smdpOid": "2.999.10",
        "finalResult": final,
    }
    value = {"profileInstallationResultData": data, "euiccSignPIR": bytes(64)}
    return asn1.rsp().encode("PendingNotification", ("profileInstallationResult", value))


def with_unknown_final_result(pir: bytes, tag: int = 0xA5) -> bytes:
    """``pir`` with finalResult's alternative retagged (BF37 { BF27 { ..., A2 { A0 {...} } }, 5F37 })."""
    outer = read_tlv(pir)
    data, signature = iter_tlvs(outer.value)
    members = list(iter_tlvs(data.value))
    assert members[-1].tag == 0xA2
    alternative = read_tlv(members[-1].value)
    members[-1] = read_tlv(tlv(0xA2, tlv(tag, alternative.value)))
    return tlv(outer.tag, tlv(data.tag, b"".join(m.raw for m in members)) + signature.raw)


def self_signed_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not an eUICC")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


def other_notification(meta: dict[str, Any], certificate: bytes) -> bytes:
    """A PendingNotification: otherSignedNotification (30), signature zeros, ``certificate`` as both certificates."""
    tbs = asn1.rsp().encode("NotificationMetadata", meta)
    return tlv(0x30, tbs + tlv(0x5F37, bytes(64)) + certificate + certificate)


def parse(der: bytes):  # type: ignore[no-untyped-def]
    return parse_pending_notification({"pendingNotification": b64encode(der)})


def invalid(der: bytes) -> str:
    with pytest.raises(RspError) as caught:
        parse(der)
    assert caught.value.code is INVALID_INPUT, caught.value
    return caught.value.message


# --- ICCID -------------------------------------------------------------------------------------------------


def test_iccid_in_ef_iccid_coding_is_decoded() -> None:
    notification = parse(installation_result())
    assert notification.iccid == ICCID
    assert (notification.kind, notification.seq_number, notification.event) == ("profileInstallationResult", 7, "install")
    assert notification.transaction_id == bytes(range(16)).hex().upper()
    assert notification.success is True and notification.detail == {"result": "success", "aid": AID.hex().upper()}


def test_iccid_not_in_ef_iccid_coding_is_accepted_and_kept_as_received() -> None:
    reading_order = encode_header_iccid(ICCID)  # 89 44 00 .. 00 1F: not nibble-swapped
    notification = parse(installation_result(meta=metadata(iccid=reading_order)))
    assert notification.iccid == reading_order.hex().upper() == "8944000000000000001F"
    assert notification.success is True


@pytest.mark.parametrize("octets", ["FFFFFFFFFFFFFFFFFFFF", "98440000000000000A10", "A1B2C3D4E5F6A7B8C9D0"])
def test_iccid_octets_that_are_no_bcd_are_kept_as_received(octets: str) -> None:
    assert parse(installation_result(meta=metadata(iccid=bytes.fromhex(octets)))).iccid == octets


def test_installation_result_without_iccid_is_accepted() -> None:
    notification = parse(installation_result(meta=metadata(iccid=None)))
    assert notification.iccid is None and notification.success is True


@pytest.mark.parametrize("size", [0, 3, 9, 11])
def test_iccid_of_the_wrong_size_is_invalid_input(size: int) -> None:
    assert "iccid must be 10 bytes" in invalid(installation_result(meta=metadata(iccid=bytes(size))))


def test_other_notification_without_iccid_is_accepted() -> None:
    certificate = self_signed_certificate()
    notification = parse(other_notification(metadata(iccid=None, event="delete"), certificate))
    assert (notification.kind, notification.event, notification.iccid) == ("otherSignedNotification", "delete", None)
    assert notification.euicc_certificate == certificate and notification.success is None


def test_other_notification_with_reading_order_iccid_is_kept_as_received() -> None:
    meta = metadata(iccid=encode_header_iccid(ICCID), event="enable")
    assert parse(other_notification(meta, self_signed_certificate())).iccid == "8944000000000000001F"


# --- unknown CHOICE alternatives and out-of-range values ---------------------------------------------------------


@pytest.mark.parametrize("der", [tlv(0xA5, b""), tlv(0xBF2D, b""), tlv(0xBF59, tlv(0x80, b"\x01"))], ids=["A5", "BF2D", "BF59"])
def test_unknown_pending_notification_alternative_is_invalid_input(der: bytes) -> None:
    assert asn1.rsp().decode("PendingNotification", der) == (None, None)  # what makes the check necessary
    assert "unknown alternative" in invalid(der)


@pytest.mark.parametrize("tag", [0xA5, 0x82, 0xBF20])
def test_unknown_final_result_alternative_is_invalid_input(tag: int) -> None:
    der = with_unknown_final_result(installation_result(), tag)
    decoded = asn1.rsp().decode("PendingNotification", der)
    assert decoded[1]["profileInstallationResultData"]["finalResult"] == (None, None)
    assert "finalResult" in invalid(der)


def test_error_final_result_is_parsed() -> None:
    final = ("errorResult", {"bppCommandId": 3, "errorReason": 1})
    notification = parse(installation_result(final=final))
    assert notification.success is False
    assert notification.detail == {"result": "error", "bppCommandId": 3, "errorReason": 1}


@pytest.mark.parametrize("seq", [-1, 2**31, 2**70])
def test_seq_number_out_of_range_is_invalid_input(seq: int) -> None:
    assert "seqNumber" in invalid(installation_result(meta=metadata(seq=seq)))


@pytest.mark.parametrize("transaction_id", [b"", bytes(17)], ids=["empty", "17 bytes"])
def test_installation_result_transaction_id_of_the_wrong_size_is_invalid_input(transaction_id: bytes) -> None:
    assert "transactionId" in invalid(installation_result(transaction_id=transaction_id))


# --- fields.choice and the signed answers' framing ---------------------------------------------------------------


def test_choice_accepts_a_known_alternative() -> None:
    assert fields.choice(("a", {"x": 1}), "f", ("a", "b")) == ("a", {"x": 1})


@pytest.mark.parametrize("value", [(None, None), ("c", {}), None, {}, ("a",), [("a", 1)]])
def test_choice_refuses_anything_else(value: Any) -> None:
    with pytest.raises(RspError) as caught:
        fields.choice(value, "field", ("a", "b"))
    assert caught.value.code is INVALID_INPUT and caught.value.message.startswith("field holds")


@pytest.mark.parametrize(
    "der,message",
    [
        (tlv(0xBF38, tlv(0xA5, b"")), "unknown alternative (tag A5)"),
        (tlv(0xBF38, tlv(0xA1, tlv(0x80, bytes(16)) + tlv(0x02, b"\x7f"))), "reports an eUICC error: authenticateResponseError"),
        (tlv(0xBF38, tlv(0xA0, b"") + b"\x00\x00"), "2 bytes after its alternative"),
        (tlv(0xBF38, tlv(0xA0, tlv(0x30, b""))), "expected [30 5F37 30 30]"),
        (tlv(0xBF21, b""), "tag BF21, expected BF38"),
        (tlv(0xBF38, b""), "not DER"),
    ],
    ids=["unknown alternative", "euicc error", "trailing bytes", "wrong members", "wrong tag", "empty"],
)
def test_split_signed_response_refuses_anything_but_the_ok_alternative(der: bytes, message: str) -> None:
    with pytest.raises(RspError) as caught:
        es9.split_signed_response(der, 0xBF38, "authenticateServerResponse", es9.SIGNED_AND_CERTIFICATES)
    assert caught.value.code is INVALID_INPUT and message in caught.value.message, caught.value.message
