"""The end of a download session: ES9+.HandleNotification (SGP.22 5.6.4) and ES9+.CancelSession (5.6.5).

Both carry data signed by the eUICC; both are verified over the exact received bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from smdp.codec.bits import bit_names
from smdp.codec.tlv import TlvError, iter_tlvs, read_tlv
from smdp.crypto import ecdsa
from smdp.pki import verify as pki
from smdp.profiles.saip import decode_iccid
from smdp.rsp import fields
from smdp.rsp.es9 import SIGNED, SessionKeyValues, check_transaction, split_signed_response
from smdp.rsp.metadata import EVENT_BITS
from smdp.rsp.status import EUICC_SIGNATURE_INVALID, INVALID_INPUT, INVALID_SMDP_OID, RspError


def notification_event(bits: tuple[bytes, int]) -> str:
    """The operation a NotificationEvent BIT STRING names (one bit set: install, enable, ...)."""
    names = bit_names(bits, EVENT_BITS)
    return names[0] if names else "unknown"


@dataclass(frozen=True)
class PendingNotification:
    """A parsed PendingNotification; ``signed`` and ``signature`` are the exact signed bytes and raw r||s."""

    kind: str  # "profileInstallationResult" or "otherSignedNotification"
    seq_number: int
    event: str
    iccid: str | None
    notification_address: str
    signed: bytes
    signature: bytes
    transaction_id: str | None = None
    smdp_oid: str | None = None
    final_result: tuple[str, dict[str, Any]] | None = None
    euicc_certificate: bytes | None = None
    eum_certificate: bytes | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool | None:
        if self.final_result is None:
            return None
        return self.final_result[0] == "successResult"


ICCID_SIZE = 10  # Iccid ::= [APPLICATION 26] OCTET STRING (SIZE(10))
MAX_SEQ_NUMBER = 2**31 - 1  # seqNumber is an INTEGER; the store keeps a 32-bit signed one


def _iccid(data: bytes) -> str:
    """The ICCID digits of an EF.ICCID-coded Iccid (nibble-swapped BCD, 'F'-padded).

    Some eUICCs send the ICCID in reading order (as in the ProfileHeader) instead: one that doesn't
    decode as EF.ICCID is kept as received, its octets in upper-case hex, rather than refused."""
    if len(data) != ICCID_SIZE:
        raise RspError(INVALID_INPUT, f"notificationMetadata iccid must be {ICCID_SIZE} bytes, not {len(data)}")
    try:
        return decode_iccid(data)
    except ValueError:
        return data.hex().upper()


def _metadata(meta: dict[str, Any]) -> tuple[int, str, str | None, str]:
    """seqNumber, event, ICCID (None when absent, as SGP.22 allows) and notificationAddress."""
    seq = meta["seqNumber"]
    if not 0 <= seq <= MAX_SEQ_NUMBER:
        raise RspError(INVALID_INPUT, f"notificationMetadata seqNumber {seq} is out of range")
    iccid = _iccid(meta["iccid"]) if meta.get("iccid") is not None else None
    return seq, notification_event(meta["profileManagementOperation"]), iccid, meta["notificationAddress"]


def parse_pending_notification(body: dict[str, Any]) -> PendingNotification:
    """Decode ES9+.HandleNotification's pendingNotification; anything malformed is 1.6/2.x (never verified here)."""
    der = fields.required_der(body, "pendingNotification")
    kind, value = fields.choice(
        fields.decode("PendingNotification", der, "pendingNotification"),
        "pendingNotification",
        ("profileInstallationResult", "otherSignedNotification"),
    )
    try:
        parts = [t.raw for t in iter_tlvs(read_tlv(der).value)]
        signature = read_tlv(parts[1]).value
    except TlvError as exc:
        raise RspError(INVALID_INPUT, f"pendingNotification is not DER: {exc}") from None
    if kind == "profileInstallationResult":
        data = value["profileInstallationResultData"]
        seq, event, iccid, address = _metadata(data["notificationMetadata"])
        transaction_id = data["transactionId"]
        if not 1 <= len(transaction_id) <= 16:
            raise RspError(INVALID_INPUT, "profileInstallationResult transactionId must be 1 to 16 bytes")
        result_kind, result = fields.choice(data["finalResult"], "finalResult", ("successResult", "errorResult"))
        return PendingNotification(
            kind, seq, event, iccid, address, signed=parts[0], signature=signature,
            transaction_id=transaction_id.hex().upper(),
            smdp_oid=data.get("smdpOid"),
            final_result=(result_kind, result),
            detail=_result_detail(result_kind, result),
        )
    seq, event, iccid, address = _metadata(value["tbsOtherNotification"])
    return PendingNotification(
        kind, seq, event, iccid, address, signed=parts[0], signature=signature,
        euicc_certificate=parts[2], eum_certificate=parts[3],
    )


def _result_detail(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """What the finalResult says, as JSON for the notification record (``kind`` checked by the caller)."""
    if kind == "successResult":
        return {"result": "success", "aid": result["aid"].hex().upper()}
    return {"result": "error", "bppCommandId": result["bppCommandId"], "errorReason": result["errorReason"]}


def verify_notification_signature(notification: PendingNotification, public_key: ec.EllipticCurvePublicKey) -> None:
    try:
        ecdsa.verify(public_key, notification.signed, notification.signature)
    except InvalidSignature:
        raise RspError(EUICC_SIGNATURE_INVALID, "the notification signature does not verify") from None


def other_notification_signer(
    notification: PendingNotification, trusted_cis: list[x509.Certificate], now: datetime
) -> pki.EuiccIdentity:
    """An otherSignedNotification carries its own certificates; they must chain to a trusted CI."""
    assert notification.euicc_certificate is not None and notification.eum_certificate is not None
    try:
        euicc = x509.load_der_x509_certificate(notification.euicc_certificate)
        eum = x509.load_der_x509_certificate(notification.eum_certificate)
        return pki.verify_euicc_chain(euicc, eum, trusted_cis, now)
    except (ValueError, pki.CertificateError) as exc:
        raise RspError(EUICC_SIGNATURE_INVALID, f"notification certificates: {exc}") from None


def verify_cancel_session(
    body: dict[str, Any], session: SessionKeyValues, euicc_public_key: ec.EllipticCurvePublicKey, smdp_oid: str
) -> int:
    """ES9+.CancelSession (SGP.22 5.6.5): returns the CancelSessionReason the eUICC signed."""
    der = fields.required_der(body, "cancelSessionResponse")
    decoded = fields.decode("CancelSessionResponse", der, "cancelSessionResponse")
    signed, signature = split_signed_response(der, 0xBF41, "cancelSessionResponse", SIGNED)
    try:
        ecdsa.verify(euicc_public_key, signed, read_tlv(signature).value)
    except InvalidSignature:
        raise RspError(EUICC_SIGNATURE_INVALID, "euiccCancelSessionSignature does not verify") from None
    cancel = decoded[1]["euiccCancelSessionSigned"]
    check_transaction(cancel["transactionId"], session)
    if cancel["smdpOid"] != smdp_oid:
        raise RspError(INVALID_SMDP_OID, f"smdpOid {cancel['smdpOid']} is not {smdp_oid}")
    return int(cancel["reason"])
