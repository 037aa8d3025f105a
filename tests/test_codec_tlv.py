"""BER-TLV helper (smdp.codec.tlv): lengths, multi-byte tags, exact consumption, precise errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smdp.codec.tlv import Tlv, TlvError, encode_length, iter_tlvs, read_tlv, tlv


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, "00"),
        (0x7F, "7F"),
        (0x80, "8180"),
        (0xFF, "81FF"),
        (0x100, "820100"),
        (0xFFFF, "82FFFF"),
        (0x10000, "83010000"),
        (0xFFFFFF, "83FFFFFF"),
    ],
)
def test_encode_length_uses_shortest_definite_form(length: int, encoded: str) -> None:
    assert encode_length(length) == bytes.fromhex(encoded)


@pytest.mark.parametrize("length", [-1, 0x1000000])
def test_encode_length_rejects_negative_and_oversized_lengths(length: int) -> None:
    with pytest.raises(ValueError):
        encode_length(length)


@pytest.mark.parametrize(
    ("tag", "value", "encoded"),
    [
        (0x5A, b"\x01", "5A0101"),
        (0x80, b"", "8000"),
        (0xBF23, b"\xaa", "BF2301AA"),
        (0x7F21, b"", "7F2100"),
        (0x5F49, b"\x04", "5F490104"),
        (0x9F70, b"\x01", "9F700101"),
        (0xBF8101, b"", "BF810100"),
    ],
)
def test_tlv_writes_the_tag_int_big_endian(tag: int, value: bytes, encoded: str) -> None:
    assert tlv(tag, value) == bytes.fromhex(encoded)


def test_tlv_switches_to_long_form_lengths() -> None:
    assert tlv(0x86, b"\x00" * 200)[:3] == bytes.fromhex("8681C8")
    assert tlv(0xBF36, b"\x00" * 0x1234)[:5] == bytes.fromhex("BF36821234")


@pytest.mark.parametrize("tag", [0, 0x1F, 0xBF, 0x8001, 0xBF81])
def test_tlv_rejects_ints_that_are_not_exactly_one_ber_tag(tag: int) -> None:
    with pytest.raises(ValueError):
        tlv(tag, b"")


def test_read_tlv_reports_position_value_and_raw_bytes() -> None:
    data = bytes.fromhex("00") + tlv(0xBF25, b"\x5a\x01\x02") + b"\xff"
    item = read_tlv(data, 1)
    assert item.tag == 0xBF25
    assert item.value == b"\x5a\x01\x02"
    assert (item.start, item.end) == (1, 7)
    assert item.raw == data[1:7]


def test_read_tlv_decodes_the_long_length_forms() -> None:
    for value_length in (0x80, 0x100, 0x10000):
        item = read_tlv(tlv(0x87, b"\x11" * value_length))
        assert len(item.value) == value_length


def test_tlv_built_by_hand_reconstructs_raw() -> None:
    assert Tlv(tag=0x5A, value=b"\x01", start=0, end=3).raw == bytes.fromhex("5A0101")


@pytest.mark.parametrize(
    ("data", "offset", "message"),
    [
        ("3080", 0, "offset 0: indefinite length"),
        ("", 0, "offset 0: expected a tag"),
        ("BF", 0, "offset 0: multi-byte tag truncated"),
        ("BF81", 0, "offset 0: multi-byte tag truncated"),
        ("5A", 0, "offset 0: length field missing"),
        ("5A82", 0, "offset 0: length field 0x82 truncated"),
        ("5A8401000000", 0, "offset 0: length form 0x84"),
        ("00005A0301", 2, "offset 2: tag 0x5A declares length 3 but only 1 byte(s) follow"),
    ],
)
def test_read_tlv_rejects_malformed_data_naming_offset_and_fault(data: str, offset: int, message: str) -> None:
    with pytest.raises(TlvError) as caught:
        read_tlv(bytes.fromhex(data), offset)
    assert message in str(caught.value)


def test_tlv_error_is_a_value_error() -> None:
    assert issubclass(TlvError, ValueError)


def test_iter_tlvs_consumes_the_buffer_exactly() -> None:
    data = tlv(0x80, b"\x01") + tlv(0xA1, tlv(0x88, b"\x02\x03")) + tlv(0x5F37, b"")
    items = list(iter_tlvs(data))
    assert [item.tag for item in items] == [0x80, 0xA1, 0x5F37]
    assert b"".join(item.raw for item in items) == data
    assert list(iter_tlvs(b"")) == []


def test_iter_tlvs_rejects_trailing_garbage_with_its_offset() -> None:
    data = tlv(0x80, b"\x01") + b"\x5a"
    with pytest.raises(TlvError, match="offset 3: length field missing"):
        list(iter_tlvs(data))


def test_iter_tlvs_rejects_a_value_running_past_the_end() -> None:
    data = tlv(0x80, b"\x01") + bytes.fromhex("A105800101")
    with pytest.raises(TlvError, match="offset 3: tag 0xA1 declares length 5 but only 3"):
        list(iter_tlvs(data))


_tags = st.sampled_from([0x04, 0x30, 0x5A, 0x80, 0x86, 0x87, 0x88, 0xA0, 0xBF23, 0xBF36, 0x5F37, 0x7F21, 0x9F70])


@given(st.lists(st.tuples(_tags, st.binary(max_size=600)), max_size=8))
def test_iter_tlvs_reads_back_what_tlv_wrote(items: list[tuple[int, bytes]]) -> None:
    data = b"".join(tlv(tag, value) for tag, value in items)
    assert [(item.tag, item.value) for item in iter_tlvs(data)] == items
