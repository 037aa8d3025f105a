"""BSP, the BPP protection protocol (SCP03t in SGP.22 v2.x): SGP.22 section 2.6.4 and 2.5, ES8+ 5.5.

What travels inside a Bound Profile Package after InitialiseSecureChannel is a sequence of
protected TLV segments, each at most 1020 bytes including tag, length and MAC:

- '87' ConfigureISDP and ReplaceSessionKeys: encrypted and MACed;
- '88' StoreMetadata: MACed only (the metadata stays readable);
- '86' LoadProfileElements: encrypted and MACed.

Protection of one segment (AES-128; keys from :mod:`smdp.crypto.kdf`):

1. Encryption (not for '88'): pad with '80' then 0..15 '00' to a multiple of 16 (the pad is always
   present), AES-CBC with S-ENC and ICV = AES-ECB(S-ENC, block counter as a 16-byte big-endian
   number). The counter starts at 1 for the first segment of a key set and advances by one per
   segment -- MAC-only '88' segments included.
2. C-MAC = AES-CMAC(S-MAC, MCV || tag || final length || data), where the final length counts
   the 8-byte MAC. The segment is tag || length || data || first 8 bytes of C-MAC, and the full
   16-byte CMAC becomes the next MCV, so the MAC chain runs through every segment in order: a
   segment that is altered, dropped, reordered or replayed breaks the chain.

ReplaceSessionKeys switches the '86' segments to PPK-ENC/PPK-MAC with their own initial MCV and a
block counter starting again at 1: that is a new :class:`BspSender`/:class:`BspReceiver` on a new
:class:`~smdp.crypto.kdf.SessionKeys`.

How the profile is cut into '86' segments: the Unprotected Profile Package (the DER Profile
Elements back to back) is treated as one byte stream and cut into consecutive chunks of the largest
size that fits, 1007 plaintext bytes (1 + 3 + 1008 + 8 = 1020), the last chunk shorter. Segment
boundaries do not follow Profile Element boundaries; the eUICC reassembles the stream. That is the
SGP.22 rule (section 2.5.3 as pySim quotes it: the block of data is split into segments of at most
1020 bytes including tag, length and MAC) and what a production SM-DP+ does: the third-party
SM-DP+ trace in pySim's ``tests/unittests/test_esim_bsp.py`` (BSP_Test_mode51) has two full
1007-byte chunks, the second starting in the middle of a Profile Element. pySim's own
``BspInstance.encrypt_and_mac`` splits the same stream at 1008 bytes, which after padding makes
1036-byte segments; we do not copy that. The '87' and '88' payloads are cut the same way (1007
resp. 1008 bytes per segment).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smdp.codec.tlv import TlvError, encode_length, read_tlv
from smdp.crypto.kdf import SessionKeys

__all__ = [
    "MAX_ENCRYPTED_PAYLOAD",
    "MAX_MAC_ONLY_PAYLOAD",
    "MAX_SEGMENT_SIZE",
    "TAG_CONFIGURE_ISDP",
    "TAG_LOAD_PROFILE_ELEMENTS",
    "TAG_REPLACE_SESSION_KEYS",
    "TAG_STORE_METADATA",
    "BspError",
    "BspReceiver",
    "BspSender",
]

MAX_SEGMENT_SIZE = 1020
MAC_LENGTH = 8
_BLOCK = 16

TAG_LOAD_PROFILE_ELEMENTS = 0x86
TAG_CONFIGURE_ISDP = 0x87
TAG_REPLACE_SESSION_KEYS = 0x87
TAG_STORE_METADATA = 0x88
_ENCRYPTED_TAGS = frozenset({TAG_LOAD_PROFILE_ELEMENTS, TAG_CONFIGURE_ISDP})
_MAC_ONLY_TAGS = frozenset({TAG_STORE_METADATA})

# A segment near the limit has a 3-byte length ('82' xx xx), so 1020 - 1 - 3 - 8 = 1008 bytes of
# data; encrypted data is padded plaintext, and the pad is at least one byte: 1007 of plaintext.
MAX_MAC_ONLY_PAYLOAD = MAX_SEGMENT_SIZE - 1 - 3 - MAC_LENGTH
MAX_ENCRYPTED_PAYLOAD = MAX_MAC_ONLY_PAYLOAD - 1


class BspError(ValueError):
    """A BSP segment failed verification or decryption (wrong MAC, padding, tag or format)."""


def _split_segment(segment: bytes, max_size: int | None) -> tuple[int, bytes, bytes]:
    """(tag, tag-and-length octets as received, value) of exactly one TLV; BspError otherwise."""
    if max_size is not None and len(segment) > max_size:
        raise BspError(f"segment of {len(segment)} bytes exceeds {max_size}")
    try:
        item = read_tlv(segment)
    except TlvError as exc:
        raise BspError(f"malformed segment: {exc}") from exc
    if item.end != len(segment):
        raise BspError("data after the segment TLV")
    if item.tag > 0xFF:
        raise BspError(f"unexpected multi-byte tag {item.tag:#x}")
    header = segment[: len(segment) - len(item.value)]
    # The MAC covers tag and length as sent; insist on the one DER form so that no two byte
    # strings carry the same segment.
    if header != bytes([item.tag]) + encode_length(len(item.value)):
        raise BspError("segment tag or length not in minimal single-byte-tag form")
    return item.tag, header, item.value


class _Channel:
    """State shared by both ends: block counter for the ICV and the MAC chaining value."""

    def __init__(self, keys: SessionKeys) -> None:
        if not isinstance(keys, SessionKeys):
            raise TypeError("keys must be SessionKeys")
        self._s_enc = keys.s_enc
        self._s_mac = keys.s_mac
        self._mcv = keys.initial_mcv
        self._counter = 0
        self._icv_cipher = Cipher(algorithms.AES(keys.s_enc), modes.ECB()).encryptor()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(segments={self._counter})"

    def _next_icv(self) -> bytes:
        self._counter += 1
        return self._icv_cipher.update(self._counter.to_bytes(_BLOCK, "big"))

    def _skip_icv(self) -> None:
        # MAC-only segments consume a counter value too.
        self._counter += 1

    def _full_mac(self, header: bytes, body: bytes) -> bytes:
        c = cmac.CMAC(algorithms.AES(self._s_mac))
        c.update(self._mcv)
        c.update(header)
        c.update(body)
        return c.finalize()


class BspSender(_Channel):
    """Protects segments in order (the SM-DP+ side). One instance per key set and BPP."""

    def encrypt_and_mac_one(self, tag: int, data: bytes) -> bytes:
        """One encrypted+MACed segment (tag '86' or '87'); ValueError if ``data`` > 1007 bytes."""
        if tag not in _ENCRYPTED_TAGS:
            raise ValueError(f"tag {tag:#04x} is not an encrypted BSP tag")
        if len(data) > MAX_ENCRYPTED_PAYLOAD:
            raise ValueError(f"at most {MAX_ENCRYPTED_PAYLOAD} bytes fit in one encrypted segment")
        pad_len = _BLOCK - (len(data) % _BLOCK)
        padded = bytes(data) + b"\x80" + bytes(pad_len - 1)
        enc = Cipher(algorithms.AES(self._s_enc), modes.CBC(self._next_icv())).encryptor()
        ciphertext = enc.update(padded) + enc.finalize()
        return self._mac(tag, ciphertext)

    def mac_only_one(self, tag: int, data: bytes) -> bytes:
        """One MAC-only segment (tag '88'); ValueError if ``data`` exceeds 1008 bytes."""
        if tag not in _MAC_ONLY_TAGS:
            raise ValueError(f"tag {tag:#04x} is not a MAC-only BSP tag")
        if len(data) > MAX_MAC_ONLY_PAYLOAD:
            raise ValueError(f"at most {MAX_MAC_ONLY_PAYLOAD} bytes fit in one MAC-only segment")
        self._skip_icv()
        return self._mac(tag, bytes(data))

    def encrypt_and_mac(self, tag: int, data: bytes) -> list[bytes]:
        """``data`` cut into 1007-byte chunks, each encrypted+MACed (at least one segment)."""
        return [self.encrypt_and_mac_one(tag, c) for c in _chunks(data, MAX_ENCRYPTED_PAYLOAD)]

    def mac_only(self, tag: int, data: bytes) -> list[bytes]:
        """``data`` cut into 1008-byte chunks, each a MAC-only segment (always at least one)."""
        return [self.mac_only_one(tag, c) for c in _chunks(data, MAX_MAC_ONLY_PAYLOAD)]

    def _mac(self, tag: int, body: bytes) -> bytes:
        header = bytes([tag]) + encode_length(len(body) + MAC_LENGTH)
        full = self._full_mac(header, body)
        self._mcv = full
        return header + body + full[:MAC_LENGTH]


def _chunks(data: bytes, size: int) -> list[bytes]:
    # An empty payload still yields one segment: every ES8+ call it stands for must be sent.
    data = bytes(data)
    if not data:
        return [b""]
    return [data[i : i + size] for i in range(0, len(data), size)]


class BspReceiver(_Channel):
    """Verifies and opens segments in order (the eUICC side).

    Any failure raises :class:`BspError` and leaves the receiver failed: every later call raises
    too, since the MAC chain cannot be resumed after a bad segment.

    Segments over 1020 bytes are refused by default, as SGP.22 sets that limit. Some servers send
    bigger ones (osmo-smdpp cuts 1008 plaintext bytes per '86' segment, making 1036-byte segments);
    ``max_segment_size=None`` accepts them, for a device side that wants to interoperate anyway.
    """

    def __init__(
        self, keys: SessionKeys, *, max_segment_size: int | None = MAX_SEGMENT_SIZE
    ) -> None:
        super().__init__(keys)
        self._max_segment_size = max_segment_size
        self._failed = False

    def verify_and_decrypt(self, segment: bytes) -> bytes:
        """Plaintext of one encrypted+MACed segment ('86' or '87')."""
        return self._guarded(self._open_encrypted, segment)

    def verify_mac_only(self, segment: bytes) -> bytes:
        """Data of one MAC-only segment ('88')."""
        return self._guarded(self._open_mac_only, segment)

    def _guarded(self, step: Callable[[bytes], bytes], segment: bytes) -> bytes:
        if self._failed:
            raise BspError("BSP receiver has already failed; the MAC chain is broken")
        try:
            if not isinstance(segment, (bytes, bytearray, memoryview)):
                raise BspError("segment must be bytes")
            return step(bytes(segment))
        except BspError:
            self._failed = True
            raise
        except Exception as exc:  # any surprise is still a bad segment, never a crash
            self._failed = True
            raise BspError(f"malformed segment: {exc}") from exc

    def _verify(self, segment: bytes, allowed: frozenset[int]) -> bytes:
        tag, header, value = _split_segment(segment, self._max_segment_size)
        if tag not in allowed:
            raise BspError(f"unexpected tag {tag:#04x}")
        if len(value) < MAC_LENGTH:
            raise BspError("segment shorter than its MAC")
        body, mac = value[:-MAC_LENGTH], value[-MAC_LENGTH:]
        full = self._full_mac(header, body)
        if not hmac.compare_digest(full[:MAC_LENGTH], mac):
            raise BspError("MAC verification failed")
        self._mcv = full
        return body

    def _open_encrypted(self, segment: bytes) -> bytes:
        body = self._verify(segment, _ENCRYPTED_TAGS)
        if not body or len(body) % _BLOCK:
            raise BspError("ciphertext is not a non-empty multiple of 16 bytes")
        dec = Cipher(algorithms.AES(self._s_enc), modes.CBC(self._next_icv())).decryptor()
        padded = dec.update(body) + dec.finalize()
        stripped = padded.rstrip(b"\x00")
        if len(padded) - len(stripped) >= _BLOCK or not stripped or stripped[-1] != 0x80:
            raise BspError("bad padding")
        return stripped[:-1]

    def _open_mac_only(self, segment: bytes) -> bytes:
        body = self._verify(segment, _MAC_ONLY_TAGS)
        self._skip_icv()
        return body
