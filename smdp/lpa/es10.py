"""The LPA's side of ES10a/b/c (SGP.22 section 5.7): build each command, send it to an eUICC, read
the answer.

The eUICC is anything with ``process(request: bytes) -> bytes`` taking one ES10 command DER and
returning its response DER (``b""`` for no data): the virtual eUICC, or an APDU transport to a real
card that does the STORE DATA framing. This module never looks inside the eUICC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from smdp.codec import asn1
from smdp.codec.bits import bit_names
from smdp.codec.tlv import TlvError, iter_tlvs, read_tlv, tlv
from smdp.profiles.saip import decode_iccid, encode_iccid
from smdp.rsp.es10b import CANCEL_REASONS, segment_bpp

__all__ = [
    "Es10Error",
    "EuiccChannel",
    "NotificationInfo",
    "authenticate_server",
    "cancel_session",
    "delete_profile",
    "disable_profile",
    "enable_profile",
    "get_eid",
    "get_euicc_challenge",
    "get_euicc_info1",
    "get_euicc_info2",
    "list_notifications",
    "list_profiles",
    "load_bound_profile_package",
    "prepare_download",
    "remove_notification",
    "retrieve_notification",
    "set_nickname",
]

_EVENTS = ("install", "enable", "disable", "delete")


class EuiccChannel(Protocol):
    """What the LPA needs from an eUICC: one ES10 command in, its response out."""

    def process(self, request: bytes) -> bytes: ...


class Es10Error(Exception):
    """The eUICC answered an ES10 command with something other than the expected response."""


def _call(euicc: EuiccChannel, request: bytes, response_type: str) -> Any:
    response = euicc.process(request)
    try:
        return asn1.decode_exact(asn1.rsp(), response_type, response)
    except asn1.Asn1Error as exc:
        raise Es10Error(f"eUICC answered with no valid {response_type}: {exc}") from None


# --- ES10b: download ------------------------------------------------------------------------------


def get_euicc_challenge(euicc: EuiccChannel) -> bytes:
    return _call(euicc, bytes.fromhex("BF2E00"), "GetEuiccChallengeResponse")["euiccChallenge"]


def get_euicc_info1(euicc: EuiccChannel) -> bytes:
    """EUICCInfo1 DER, forwarded as is to ES9+.InitiateAuthentication."""
    response = euicc.process(bytes.fromhex("BF2000"))
    _check("EUICCInfo1", response)
    return response


def get_euicc_info2(euicc: EuiccChannel) -> dict[str, Any]:
    return _call(euicc, bytes.fromhex("BF2200"), "EUICCInfo2")


def _check(type_name: str, der: bytes) -> None:
    try:
        asn1.decode_exact(asn1.rsp(), type_name, der)
    except asn1.Asn1Error as exc:
        raise Es10Error(f"eUICC answered with no valid {type_name}: {exc}") from None


def authenticate_server(
    euicc: EuiccChannel,
    *,
    server_signed1: bytes,
    server_signature1: bytes,
    euicc_ci_pkid: bytes,
    server_certificate: bytes,
    matching_id: str | None,
    device_info: dict[str, Any],
) -> bytes:
    """ES10b.AuthenticateServer: the four values from InitiateAuthentication (DER TLVs, as received)
    plus ctxParams1 built here. Returns the AuthenticateServerResponse DER (Ok or Error)."""
    ctx: dict[str, Any] = {"deviceInfo": device_info}
    if matching_id:
        ctx["matchingId"] = matching_id
    ctx_params1 = asn1.rsp().encode("CtxParams1", ("ctxParamsForCommonAuthentication", ctx))
    request = tlv(0xBF38, server_signed1 + server_signature1 + euicc_ci_pkid + server_certificate + ctx_params1)
    response = euicc.process(request)
    _check("AuthenticateServerResponse", response)
    return response


def prepare_download(
    euicc: EuiccChannel,
    *,
    smdp_signed2: bytes,
    smdp_signature2: bytes,
    smdp_certificate: bytes,
    hash_cc: bytes | None,
) -> bytes:
    """ES10b.PrepareDownload; returns the PrepareDownloadResponse DER (Ok or Error)."""
    cc = tlv(0x04, hash_cc) if hash_cc is not None else b""
    response = euicc.process(tlv(0xBF21, smdp_signed2 + smdp_signature2 + cc + smdp_certificate))
    _check("PrepareDownloadResponse", response)
    return response


def load_bound_profile_package(euicc: EuiccChannel, bpp: bytes) -> bytes | None:
    """Send the BPP segment by segment (:func:`smdp.rsp.es10b.segment_bpp`); the ProfileInstallationResult DER ('BF37'), or None if the
    eUICC never produced one (the LPA then cancels the session with loadBppExecutionError)."""
    for chunk in segment_bpp(bpp):
        response = euicc.process(chunk)
        if response:
            _check("ProfileInstallationResult", response)
            return response
    return None


def cancel_session(euicc: EuiccChannel, transaction_id: bytes, reason: str) -> bytes:
    """ES10b.CancelSession; returns the CancelSessionResponse DER for ES9+.CancelSession."""
    request = asn1.rsp().encode(
        "CancelSessionRequest", {"transactionId": transaction_id, "reason": CANCEL_REASONS[reason]}
    )
    response = euicc.process(request)
    _check("CancelSessionResponse", response)
    return response


# --- ES10b: notifications -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationInfo:
    seq_number: int
    event: str
    address: str
    iccid: str | None


def _event(bits: tuple[bytes, int]) -> str:
    """The operation a NotificationEvent BIT STRING names (one bit set: install, enable, ...)."""
    names = bit_names(bits, _EVENTS)
    return names[0] if names else "unknown"


def list_notifications(euicc: EuiccChannel) -> list[NotificationInfo]:
    kind, value = _call(euicc, bytes.fromhex("BF2800"), "ListNotificationResponse")
    if kind != "notificationMetadataList":
        raise Es10Error(f"ListNotification failed: {value}")
    return [
        NotificationInfo(
            seq_number=m["seqNumber"],
            event=_event(m["profileManagementOperation"]),
            address=m["notificationAddress"],
            iccid=decode_iccid(m["iccid"]) if "iccid" in m else None,
        )
        for m in value
    ]


def retrieve_notification(euicc: EuiccChannel, seq_number: int) -> bytes | None:
    """The PendingNotification DER with ``seq_number`` ('BF37' or '30'), as the eUICC signed it."""
    request = asn1.rsp().encode("RetrieveNotificationsListRequest", {"searchCriteria": ("seqNumber", seq_number)})
    response = euicc.process(request)
    _check("RetrieveNotificationsListResponse", response)
    try:
        outer = read_tlv(response)
        listing = read_tlv(outer.value)
        if listing.tag != 0xA0:
            return None  # notificationsListResultError
        items = list(iter_tlvs(listing.value))
    except TlvError as exc:
        raise Es10Error(f"malformed RetrieveNotificationsListResponse: {exc}") from None
    return items[0].raw if items else None


def remove_notification(euicc: EuiccChannel, seq_number: int) -> int:
    """ES10b.RemoveNotificationFromList; returns deleteNotificationStatus (0 ok, 1 nothingToDelete)."""
    request = asn1.rsp().encode("NotificationSentRequest", {"seqNumber": seq_number})
    return _call(euicc, request, "NotificationSentResponse")["deleteNotificationStatus"]


# --- ES10c: local profile management --------------------------------------------------------------------


def list_profiles(euicc: EuiccChannel) -> list[dict[str, Any]]:
    """GetProfilesInfo, every Profile with every field (asn1tools values)."""
    kind, value = _call(euicc, bytes.fromhex("BF2D00"), "ProfileInfoListResponse")
    if kind != "profileInfoListOk":
        raise Es10Error(f"GetProfilesInfo failed: {value}")
    return list(value)


def _identifier(iccid_or_aid: str) -> tuple[str, bytes]:
    # An ISD-P AID is 32 hex digits; an ICCID 18 to 20 decimal digits (lpac decides the same way).
    if len(iccid_or_aid) == 32:
        return "isdpAid", bytes.fromhex(iccid_or_aid)
    return "iccid", encode_iccid(iccid_or_aid)


def enable_profile(euicc: EuiccChannel, iccid_or_aid: str, *, refresh: bool = True) -> int:
    """ES10c.EnableProfile; returns enableResult (0 ok)."""
    request = asn1.rsp().encode(
        "EnableProfileRequest", {"profileIdentifier": _identifier(iccid_or_aid), "refreshFlag": refresh}
    )
    return _call(euicc, request, "EnableProfileResponse")["enableResult"]


def disable_profile(euicc: EuiccChannel, iccid_or_aid: str, *, refresh: bool = True) -> int:
    """ES10c.DisableProfile; returns disableResult (0 ok)."""
    request = asn1.rsp().encode(
        "DisableProfileRequest", {"profileIdentifier": _identifier(iccid_or_aid), "refreshFlag": refresh}
    )
    return _call(euicc, request, "DisableProfileResponse")["disableResult"]


def delete_profile(euicc: EuiccChannel, iccid_or_aid: str) -> int:
    """ES10c.DeleteProfile; returns deleteResult (0 ok)."""
    request = asn1.rsp().encode("DeleteProfileRequest", _identifier(iccid_or_aid))
    return _call(euicc, request, "DeleteProfileResponse")["deleteResult"]


def set_nickname(euicc: EuiccChannel, iccid: str, nickname: str) -> int:
    """ES10c.SetNickname; returns setNicknameResult (0 ok)."""
    request = asn1.rsp().encode("SetNicknameRequest", {"iccid": encode_iccid(iccid), "profileNickname": nickname})
    return _call(euicc, request, "SetNicknameResponse")["setNicknameResult"]


def get_eid(euicc: EuiccChannel) -> str:
    """ES10c.GetEID: the EID as 32 digits."""
    return _call(euicc, bytes.fromhex("BF3E035C015A"), "GetEuiccDataResponse")["eidValue"].hex().upper()
