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
    "MAX_NICKNAME",
    "Es10Error",
    "EuiccChannel",
    "NotificationInfo",
    "ProfileOperationError",
    "ResultCode",
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
    "result_names",
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


# The result codes of each ES10c function as SGP.22 names them (5.7.16 to 5.7.18, 5.7.21; smdp/asn1/rsp.asn).
_RESULT_NAMES: dict[str, dict[int, str]] = {
    "EnableProfile": {0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState", 3: "disallowedByPolicy",
                      4: "wrongProfileReenabling", 5: "catBusy", 127: "undefinedError"},
    "DisableProfile": {0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInEnabledState", 3: "disallowedByPolicy",
                       5: "catBusy", 127: "undefinedError"},
    "DeleteProfile": {0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState", 3: "disallowedByPolicy",
                      127: "undefinedError"},
    "SetNickname": {0: "ok", 1: "iccidNotFound", 127: "undefinedError"},
}  # fmt: skip


def result_names(function: str) -> dict[int, str]:
    """The named result codes of an ES10c function ("EnableProfile", "DisableProfile", ...)."""
    return dict(_RESULT_NAMES[function])


class ResultCode(int):
    """An ES10c result code: still the plain integer the eUICC answered (``== 0`` is success), and
    also its SGP.22 name, so that a refusal can be reported as the specification spells it."""

    function: str
    label: str

    def __new__(cls, function: str, value: int) -> ResultCode:
        code = super().__new__(cls, value)
        code.function = function
        # A code the specification does not define is shown with its number (a newer eUICC may send one).
        code.label = _RESULT_NAMES[function].get(value, "unknownResult")
        return code

    @property
    def ok(self) -> bool:
        return self == 0

    def __str__(self) -> str:
        return f"{self.label}({int(self)})"

    def __repr__(self) -> str:
        return f"ResultCode({self.function!r}, {int(self)})"

    def raise_for_error(self) -> None:
        """Raise :class:`ProfileOperationError` unless the eUICC answered ok."""
        if not self.ok:
            raise ProfileOperationError(self)


class ProfileOperationError(Es10Error):
    """The eUICC understood an ES10c command and refused it; ``result`` says why."""

    def __init__(self, result: ResultCode) -> None:
        super().__init__(f"{result.function}: the eUICC answered {result}")
        self.result = result


def _identifier(iccid_or_aid: str) -> tuple[str, bytes]:
    # An ISD-P AID is 32 hex digits; an ICCID 18 to 20 decimal digits (lpac decides the same way).
    if len(iccid_or_aid) == 32:
        try:
            return "isdpAid", bytes.fromhex(iccid_or_aid)
        except ValueError:
            raise Es10Error(f"{iccid_or_aid!r} is neither an ICCID nor an ISD-P AID") from None
    if not iccid_or_aid.isdigit() or not 18 <= len(iccid_or_aid) <= 20:
        raise Es10Error(f"{iccid_or_aid!r} is neither an ICCID (18 to 20 digits) nor an ISD-P AID (32 hex digits)")
    return "iccid", encode_iccid(iccid_or_aid)


# refreshFlag: False by default, as lpac sends it (`lpac profile enable ICCID [refreshflag]`, default 0).
# With False the eUICC does not REFRESH the terminal itself (SGP.22 5.7.16): a modem-driven LPA
# and the virtual eUICC, which has no proactive session, want exactly that.


def enable_profile(euicc: EuiccChannel, iccid_or_aid: str, *, refresh: bool = False) -> ResultCode:
    """ES10c.EnableProfile (SGP.22 5.7.16); returns enableResult (0 ok; :meth:`ResultCode.raise_for_error`)."""
    request = asn1.rsp().encode(
        "EnableProfileRequest", {"profileIdentifier": _identifier(iccid_or_aid), "refreshFlag": refresh}
    )
    return ResultCode("EnableProfile", _call(euicc, request, "EnableProfileResponse")["enableResult"])


def disable_profile(euicc: EuiccChannel, iccid_or_aid: str, *, refresh: bool = False) -> ResultCode:
    """ES10c.DisableProfile (SGP.22 5.7.17); returns disableResult (0 ok)."""
    request = asn1.rsp().encode(
        "DisableProfileRequest", {"profileIdentifier": _identifier(iccid_or_aid), "refreshFlag": refresh}
    )
    return ResultCode("DisableProfile", _call(euicc, request, "DisableProfileResponse")["disableResult"])


def delete_profile(euicc: EuiccChannel, iccid_or_aid: str) -> ResultCode:
    """ES10c.DeleteProfile (SGP.22 5.7.18); returns deleteResult (0 ok)."""
    request = asn1.rsp().encode("DeleteProfileRequest", _identifier(iccid_or_aid))
    return ResultCode("DeleteProfile", _call(euicc, request, "DeleteProfileResponse")["deleteResult"])


#: SetNicknameRequest.profileNickname is UTF8String (SIZE(0..64)): 64 characters at most.
MAX_NICKNAME = 64


def set_nickname(euicc: EuiccChannel, iccid: str, nickname: str) -> ResultCode:
    """ES10c.SetNickname (SGP.22 5.7.21); an empty ``nickname`` clears it. Returns setNicknameResult."""
    if len(nickname) > MAX_NICKNAME:
        raise Es10Error(f"a nickname has at most {MAX_NICKNAME} characters, not {len(nickname)}")
    kind, value = _identifier(iccid)
    if kind != "iccid":
        raise Es10Error("SetNickname names the Profile by its ICCID, not by an ISD-P AID")
    request = asn1.rsp().encode("SetNicknameRequest", {"iccid": value, "profileNickname": nickname})
    return ResultCode("SetNickname", _call(euicc, request, "SetNicknameResponse")["setNicknameResult"])


def get_eid(euicc: EuiccChannel) -> str:
    """ES10c.GetEID: the EID as 32 digits."""
    return _call(euicc, bytes.fromhex("BF3E035C015A"), "GetEuiccDataResponse")["eidValue"].hex().upper()
