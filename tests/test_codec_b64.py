"""Base64 helper (smdp.codec.b64): RFC 4648 standard alphabet, strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smdp.codec.b64 import b64decode, b64encode


def test_b64encode_uses_standard_alphabet_with_padding() -> None:
    assert b64encode(b"\xfb\xff") == "+/8="
    assert b64encode(b"\x01") == "AQ=="
    assert b64encode(b"") == ""


def test_b64encode_rejects_text() -> None:
    with pytest.raises(TypeError):
        b64encode("AQ==")  # type: ignore[arg-type]


@given(st.binary(max_size=300))
def test_b64decode_reads_back_what_b64encode_wrote(data: bytes) -> None:
    assert b64decode(b64encode(data)) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("AQ", "not a multiple of 4"),
        ("AQI", "not a multiple of 4"),
        ("AQ I", "character ' ' at position 2"),
        ("AQI=\n", "character '\\n' at position 4"),
        ("AQ-_", "character '-' at position 2"),
        ("AQ==AQ==", "invalid base64"),
        ("====", "invalid base64"),
        ("AQJ=", "non-canonical"),
    ],
)
def test_b64decode_rejects_malformed_text_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        b64decode(text)
    assert message in str(caught.value)


@pytest.mark.parametrize("value", [b"AQ==", None, 7])
def test_b64decode_rejects_non_str_with_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        b64decode(value)  # type: ignore[arg-type]
