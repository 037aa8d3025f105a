"""ES2+ (Operator ↔ SM-DP+), SGP.22 section 5.3: request fields, the profile lifecycle, progress events.

Sans-IO: parsing and validating the JSON fields and the HandleDownloadProgressInfo payload (section 5.3.5).
The profile states and their transitions are :mod:`smdp.rsp.lifecycle`'s.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from smdp.pki.eid import is_valid_eid
from smdp.rsp.lifecycle import ProfileState as S
from smdp.rsp.status import (
    EID_INVALID,
    INVALID_INPUT,
    MISSING_INPUT,
    SMDS_ADDRESS_INVALID,
    RspError,
)

_ICCID = re.compile(r"^\d{18,19}[\dFf]?$")
_MATCHING_ID = re.compile(r"^[A-Za-z0-9-]{1,255}$")  # what every LPA (lpac included) accepts
_FQDN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")

def header(body: dict[str, Any]) -> tuple[str, str]:
    """functionRequesterIdentifier and functionCallIdentifier (SGP.22 6.5.1.3)."""
    value = body.get("header")
    if not isinstance(value, dict):
        raise RspError(MISSING_INPUT, "header is missing")
    names = ("functionRequesterIdentifier", "functionCallIdentifier")
    for name in names:
        if not isinstance(value.get(name), str) or not value[name]:
            raise RspError(MISSING_INPUT, f"header.{name} is missing")
    return value[names[0]], value[names[1]]


def optional_str(body: dict[str, Any], name: str, max_length: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise RspError(INVALID_INPUT, f"{name} must be a string of at most {max_length} characters")
    return value


def iccid(body: dict[str, Any], *, required: bool = True) -> str | None:
    value = optional_str(body, "iccid", 20)
    if value is None:
        if required:
            raise RspError(MISSING_INPUT, "iccid is missing")
        return None
    if not _ICCID.match(value):
        raise RspError(INVALID_INPUT, "iccid must be 18 to 20 digits (a trailing F allowed)")
    return value.rstrip("Ff")


def eid(body: dict[str, Any]) -> str | None:
    value = optional_str(body, "eid", 32)
    if value is not None and not is_valid_eid(value):
        raise RspError(EID_INVALID, "eid must be 32 digits with valid check digits")
    return value


def matching_id(body: dict[str, Any]) -> str | None:
    """ConfirmOrder's matchingId (SGP.22 5.3.2): None when omitted (the SM-DP+ generates one); "" for the
    default SM-DP+ use case, where the eUICC presents no matching ID and the order needs an EID."""
    value = optional_str(body, "matchingId")
    if value and not _MATCHING_ID.match(value):
        raise RspError(INVALID_INPUT, "matchingId may hold letters, digits and '-' only")
    return value


def smds_address(body: dict[str, Any]) -> str | None:
    value = optional_str(body, "smdsAddress")
    if value is not None and not _FQDN.match(value):
        raise RspError(SMDS_ADDRESS_INVALID, f"{value!r} is not a fully qualified domain name")
    return value


def required_bool(body: dict[str, Any], name: str) -> bool:
    if name not in body:
        raise RspError(MISSING_INPUT, f"{name} is missing")
    if not isinstance(body[name], bool):
        raise RspError(INVALID_INPUT, f"{name} must be true or false")
    return body[name]


def final_status(body: dict[str, Any]) -> S:
    value = body.get("finalProfileStatusIndicator")
    if value is None:
        raise RspError(MISSING_INPUT, "finalProfileStatusIndicator is missing")
    if value not in (S.AVAILABLE.value, S.UNAVAILABLE.value):
        raise RspError(INVALID_INPUT, "finalProfileStatusIndicator must be Available or Unavailable")
    return S(value)


# --- HandleDownloadProgressInfo (SGP.22 5.3.5) ------------------------------------------------------

ELIGIBILITY_CHECK = 1  # SGP.22 notification points; 1-4 as the specification numbers them
CONFIRMATION_FAILURE = 2
BPP_DOWNLOAD = 3
BPP_INSTALLATION = 4
SESSION_CANCELLED = 5  # smdp's own points for what SGP.22 v2 leaves unnumbered
PROFILE_ENABLED = 6
PROFILE_DISABLED = 7
PROFILE_DELETED = 8
OTHER_EVENTS = {"enable": PROFILE_ENABLED, "disable": PROFILE_DISABLED, "delete": PROFILE_DELETED}


def progress_payload(
    *,
    requester: str,
    function_call_id: str,
    iccid: str,
    profile_type: str | None,
    eid: str | None,
    point: int,
    ok: bool,
    timestamp: datetime,
    code: tuple[str, str, str] | None = None,
    result_data: str | None = None,
) -> dict[str, Any]:
    """One HandleDownloadProgressInfo request; functionCallIdentifier is the event's idempotency key."""
    status: dict[str, Any] = {"status": "Executed-Success" if ok else "Failed"}
    if code is not None:
        status["statusCodeData"] = {"subjectCode": code[0], "reasonCode": code[1], "message": code[2]}
    payload: dict[str, Any] = {
        "header": {"functionRequesterIdentifier": requester, "functionCallIdentifier": function_call_id},
        "iccid": iccid,
        "profileType": profile_type or "",
        "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "notificationPointId": point,
        "notificationPointStatus": status,
    }
    if eid:
        payload["eid"] = eid
    if result_data:
        payload["resultData"] = result_data
    return payload
