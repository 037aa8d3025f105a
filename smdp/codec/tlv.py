"""BER-TLV helper (ISO/IEC 8825-1 / X.690 section 8.1, as profiled by ETSI TS 102 221 and
GlobalPlatform): the one place in smdp that reads and writes raw tag-length-value data.

Used wherever SGP.22 handles TLVs below the ASN.1 layer: splitting a SAIP package into
Profile Elements, the '86'/'87'/'88' TLVs of a Bound Profile Package, STORE DATA and
APDU payloads. Tags are ints whose big-endian bytes are the tag bytes (0x5A, 0xBF23,
0x7F21). Only definite lengths are accepted (DER, and everything SGP.22 exchanges);
lengths are read in short form and in the 0x81, 0x82 and 0x83 long forms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Tlv", "TlvError", "encode_length", "encode_tag", "iter_tlvs", "read_tlv", "tlv"]

# 0x83 form: lengths up to 16 MiB. Nothing in SGP.22 is larger; a 0x84 length is far
# more likely garbage than a real object, and rejecting it bounds what we will buffer.
MAX_LENGTH_OCTETS = 3


class TlvError(ValueError):
    """Malformed BER-TLV data; the message names the offset and what was wrong."""


@dataclass(frozen=True)
class Tlv:
    """One TLV found in a buffer.

    ``start`` and ``end`` delimit the whole TLV (tag, length and value) in the buffer
    it was read from; ``raw`` returns exactly those bytes.
    """

    tag: int
    value: bytes
    start: int
    end: int
    # The buffer the TLV was read from (shared, not copied); empty when built by hand.
    _source: bytes = field(default=b"", repr=False, compare=False)

    @property
    def raw(self) -> bytes:
        """The whole TLV exactly as it appeared in the source buffer."""
        if self._source:
            return self._source[self.start : self.end]
        return tlv(self.tag, self.value)

    def __repr__(self) -> str:
        return (
            f"Tlv(tag=0x{self.tag:X}, length={len(self.value)}, "
            f"start={self.start}, end={self.end})"
        )


def encode_length(n: int) -> bytes:
    """BER definite length in its shortest form (X.690 8.1.3, as DER requires)."""
    if n < 0:
        raise ValueError(f"length must not be negative, got {n}")
    if n < 0x80:
        return bytes([n])
    size = (n.bit_length() + 7) // 8
    if size > MAX_LENGTH_OCTETS:
        raise ValueError(
            f"length {n} needs {size} length octets; at most {MAX_LENGTH_OCTETS} supported"
        )
    return bytes([0x80 | size]) + n.to_bytes(size, "big")


def encode_tag(tag: int) -> bytes:
    """The tag bytes of ``tag``, checked to be one well-formed BER tag."""
    if tag <= 0:
        raise ValueError(f"tag must be positive, got {tag}")
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    try:
        _, end = _read_tag(tag_bytes, 0)
    except TlvError:
        end = -1
    if end != len(tag_bytes):
        raise ValueError(f"0x{tag:X} is not a single BER tag")
    return tag_bytes


def tlv(tag: int, value: bytes) -> bytes:
    """Encode one TLV: tag bytes, shortest definite length, value."""
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    """Return (tag as int, offset after the tag) for the tag at ``offset``."""
    if offset >= len(data):
        raise TlvError(f"offset {offset}: expected a tag, found end of data")
    first = data[offset]
    position = offset + 1
    tag = first
    if first & 0x1F == 0x1F:
        # Multi-byte tag: subsequent bytes carry 7 bits each, b8 set on all but the last.
        while True:
            if position >= len(data):
                raise TlvError(f"offset {offset}: multi-byte tag truncated at end of data")
            byte = data[position]
            tag = (tag << 8) | byte
            position += 1
            if not byte & 0x80:
                break
    return tag, position


def _read_length(data: bytes, offset: int, tlv_start: int) -> tuple[int, int]:
    """Return (length, offset after the length field) for the length at ``offset``."""
    if offset >= len(data):
        raise TlvError(f"offset {tlv_start}: length field missing at end of data")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    if first == 0x80:
        raise TlvError(f"offset {tlv_start}: indefinite length (0x80) is not allowed")
    size = first & 0x7F
    if size > MAX_LENGTH_OCTETS:
        raise TlvError(
            f"offset {tlv_start}: length form 0x{first:02X} ({size} length octets) is not supported"
        )
    if offset + 1 + size > len(data):
        raise TlvError(f"offset {tlv_start}: length field 0x{first:02X} truncated at end of data")
    return int.from_bytes(data[offset + 1 : offset + 1 + size], "big"), offset + 1 + size


def read_tlv(data: bytes, offset: int = 0) -> Tlv:
    """Read the TLV starting at ``offset``.

    Raises TlvError for a truncated tag or length, an indefinite length, or a value
    running past the end of ``data``.
    """
    data = bytes(data)
    if offset < 0:
        raise TlvError(f"offset {offset}: negative offset")
    tag, position = _read_tag(data, offset)
    length, value_start = _read_length(data, position, offset)
    end = value_start + length
    if end > len(data):
        raise TlvError(
            f"offset {offset}: tag 0x{tag:X} declares length {length} but only "
            f"{len(data) - value_start} byte(s) follow"
        )
    return Tlv(tag=tag, value=data[value_start:end], start=offset, end=end, _source=data)


def iter_tlvs(data: bytes) -> Iterator[Tlv]:
    """Yield the consecutive TLVs that make up ``data``, which must be consumed exactly.

    A malformed or truncated TLV anywhere raises TlvError when reached.
    """
    data = bytes(data)
    offset = 0
    while offset < len(data):
        item = read_tlv(data, offset)
        yield item
        offset = item.end
