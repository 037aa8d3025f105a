"""Base64 as used by the SGP.22 ES9+/ES2+ JSON bindings (section 6.5): the one base64 helper.

ASN.1 DER values travel inside JSON as base64 (RFC 4648 section 4: standard alphabet,
with padding). Decoding is strict on purpose: a lenient decoder that drops stray
characters or whitespace would accept two different texts for one value, and an
SM-DP+ should answer malformed input with an error instead of guessing.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["b64decode", "b64encode"]

_NOT_ALPHABET = re.compile(r"[^A-Za-z0-9+/=]")


def b64encode(data: bytes) -> str:
    """Standard-alphabet base64 with '=' padding, as an ASCII str."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"b64encode expects bytes, got {type(data).__name__}")
    return base64.b64encode(bytes(data)).decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode strict RFC 4648 base64: standard alphabet, padding required, no whitespace.

    Raises ValueError naming what is wrong (a non-str argument, a character outside the
    alphabet, a length that is not a multiple of 4, or misplaced padding).
    """
    if not isinstance(text, str):
        raise ValueError(f"base64 value must be a string, got {type(text).__name__}")
    bad = _NOT_ALPHABET.search(text)
    if bad:
        raise ValueError(f"invalid base64: character {bad.group()!r} at position {bad.start()}")
    if len(text) % 4:
        raise ValueError(
            f"base64 value length {len(text)} is not a multiple of 4 (padding missing?)"
        )
    try:
        # validate=True rejects characters outside the alphabet, whitespace included.
        decoded = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None
    # RFC 4648 section 3.5: pad bits must be zero, otherwise several texts decode to
    # the same bytes. binascii does not check this, so compare with the canonical text.
    if base64.b64encode(decoded).decode("ascii") != text:
        raise ValueError("invalid base64: non-canonical encoding (non-zero pad bits)")
    return decoded
