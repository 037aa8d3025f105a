"""Reading the fields of an ES9+ JSON request (SGP.22 section 6.5.2): presence, type, base64, DER.

Each helper raises :class:`RspError` with 1.6/2.2 (missing) or 1.6/2.1 (invalid) and names the field,
so that a malformed request never reaches the protocol logic.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from smdp.codec import asn1, b64
from smdp.codec.tlv import TlvError, read_tlv
from smdp.rsp.status import INVALID_INPUT, MISSING_INPUT, RspError

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def required_str(body: dict[str, Any], name: str, *, max_length: int = 4096) -> str:
    if name not in body or body[name] is None:
        raise RspError(MISSING_INPUT, f"{name} is missing")
    value = body[name]
    if not isinstance(value, str):
        raise RspError(INVALID_INPUT, f"{name} must be a string")
    if len(value) > max_length:
        raise RspError(INVALID_INPUT, f"{name} is too long")
    return value


def required_der(body: dict[str, Any], name: str) -> bytes:
    """A base64 field holding exactly one complete DER TLV."""
    text = required_str(body, name, max_length=48 * 1024)
    try:
        data = b64.b64decode(text)
    except ValueError as exc:
        raise RspError(INVALID_INPUT, f"{name} is not valid base64: {exc}") from None
    try:
        tlv = read_tlv(data)
    except TlvError as exc:
        raise RspError(INVALID_INPUT, f"{name} is not DER: {exc}") from None
    if tlv.end != len(data):
        raise RspError(INVALID_INPUT, f"{name} has {len(data) - tlv.end} trailing bytes after its DER value")
    return data


def required_b64(body: dict[str, Any], name: str, *, size: int | None = None) -> bytes:
    text = required_str(body, name, max_length=48 * 1024)
    try:
        data = b64.b64decode(text)
    except ValueError as exc:
        raise RspError(INVALID_INPUT, f"{name} is not valid base64: {exc}") from None
    if size is not None and len(data) != size:
        raise RspError(INVALID_INPUT, f"{name} must be {size} bytes, not {len(data)}")
    return data


def transaction_id(body: dict[str, Any]) -> str:
    """The transactionId as the canonical upper-case hex string (SGP.22: 1..16 bytes, hex coded)."""
    text = required_str(body, "transactionId", max_length=32)
    if not _HEX.fullmatch(text):  # bytes.fromhex alone would also take whitespace between the bytes
        raise RspError(INVALID_INPUT, "transactionId is not a hex string")
    raw = bytes.fromhex(text)
    if not 1 <= len(raw) <= 16:
        raise RspError(INVALID_INPUT, "transactionId must be 1 to 16 bytes")
    return raw.hex().upper()


def choice(value: Any, field: str, alternatives: Collection[str]) -> tuple[str, Any]:
    """A decoded CHOICE as ``(alternative, value)``, the alternative being one of ``alternatives``.

    The RSP module is EXTENSIBILITY IMPLIED, so asn1tools decodes an alternative it doesn't know as
    ``(None, None)`` rather than failing; that, like an alternative the caller can't handle, is 1.6/2.1."""
    if not (isinstance(value, tuple) and len(value) == 2 and value[0] in alternatives):
        kind = value[0] if isinstance(value, tuple) and value and value[0] is not None else "an unknown alternative"
        raise RspError(INVALID_INPUT, f"{field} holds {kind}, expected {' or '.join(alternatives)}")
    return value


# Types decoded with their ASN.1 constraints checked, because callers index their values unchecked:
# initiateAuthentication reads EUICCInfo1.svn[0] (VersionType ::= OCTET STRING (SIZE(3))).
_CHECK_CONSTRAINTS = frozenset({"EUICCInfo1"})


def decode(type_name: str, data: bytes, field: str) -> Any:
    """Decode DER ``data`` as RSPDefinitions ``type_name``; any decoder complaint is 1.6/2.1."""
    try:
        return asn1.rsp().decode(type_name, data, check_constraints=type_name in _CHECK_CONSTRAINTS)
    except Exception as exc:  # noqa: BLE001 - asn1tools raises several unrelated types for bad input
        raise RspError(INVALID_INPUT, f"{field} is not a valid {type_name}: {exc}") from None
