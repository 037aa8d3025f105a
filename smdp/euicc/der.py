"""Small DER pieces the virtual eUICC needs beyond :mod:`smdp.codec.tlv` (SGP.22 section 5.7.6).

ES10b.LoadBoundProfilePackage arrives cut into STORE DATA commands, and two of those commands are
a bare TLV *header* ('A1' and 'A3' tag and length, the value following in later commands), which a
whole-TLV reader cannot take. :func:`read_header` reads just that prefix; everything else goes
through :mod:`smdp.codec.tlv`. :func:`decode_request` is the one strict ES10 command decoder.
(Named BIT STRING values, NotificationEvent, PprIds and the capability bit strings, go through
:mod:`smdp.codec.bits`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smdp.codec import asn1
from smdp.codec.tlv import TlvError, encode_length, encode_tag
from smdp.euicc.errors import EuiccCommandError

__all__ = ["Header", "decode_request", "iter_tags", "read_header"]


def decode_request(type_name: str, request: bytes) -> Any:
    """Decode one ES10 command as RSPDefinitions ``type_name``; EuiccCommandError if it is not one
    (trailing bytes included: what was signed must be all there is)."""
    try:
        return asn1.decode_exact(asn1.rsp(), type_name, request)
    except asn1.Asn1Error as exc:
        raise EuiccCommandError(f"not a valid {type_name}: {exc}") from None


@dataclass(frozen=True)
class Header:
    """Tag and declared length of a TLV whose value may not (yet) be present."""

    tag: int
    length: int
    size: int  # bytes taken by the tag and length fields


def read_header(data: bytes) -> Header:
    """Tag and definite length at the start of ``data``; TlvError if malformed or not minimal (DER)."""
    if not data:
        raise TlvError("offset 0: expected a tag, found end of data")
    position = 1
    if data[0] & 0x1F == 0x1F:
        while True:
            if position >= len(data):
                raise TlvError("offset 0: multi-byte tag truncated")
            position += 1
            if not data[position - 1] & 0x80:
                break
    tag = int.from_bytes(data[:position], "big")
    if position >= len(data):
        raise TlvError(f"offset 0: tag 0x{tag:X} has no length field")
    first = data[position]
    count = 1 + (first & 0x7F if first & 0x80 else 0)
    if first == 0x80 or count > 4 or position + count > len(data):
        raise TlvError(f"offset 0: bad length field after tag 0x{tag:X}")
    length = first if count == 1 else int.from_bytes(data[position + 1 : position + count], "big")
    if encode_length(length) != data[position : position + count]:
        raise TlvError(f"offset 0: length of tag 0x{tag:X} is not in shortest (DER) form")
    return Header(tag=tag, length=length, size=position + count)


def iter_tags(data: bytes) -> list[int]:
    """The tags listed back to back in a tag list ('5C' value of GetProfilesInfo, ISO 7816-4)."""
    tags: list[int] = []
    position = 0
    while position < len(data):
        end = position + 1
        if data[position] & 0x1F == 0x1F:
            while end < len(data) and data[end] & 0x80:
                end += 1
            end += 1
        if end > len(data):
            raise TlvError(f"offset {position}: tag list ends inside a tag")
        tag = int.from_bytes(data[position:end], "big")
        encode_tag(tag)  # ValueError for a malformed tag
        tags.append(tag)
        position = end
    return tags
