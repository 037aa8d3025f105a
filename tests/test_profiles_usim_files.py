"""USIM steering files (3GPP TS 31.102 EF.OPLMNwACT 4.2.53, EF.FPLMN 4.2.16) and the PLMN coding of
3GPP TS 24.008 section 10.5.1.3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smdp.profiles.usim_files import (
    PlmnWithAct,
    decode_fplmn,
    decode_oplmnwact,
    decode_plmn,
    encode_fplmn,
    encode_oplmnwact,
    encode_plmn,
)


@pytest.mark.parametrize(
    ("mcc", "mnc", "coded"),
    [
        ("001", "01", "00F110"),  # the test network of the TS.48 profiles
        ("246", "81", "42F618"),  # as in the TS.48 EF.LOCI / EF.PSLOCI content
        ("426", "02", "24F620"),
        ("310", "260", "130062"),  # 3-digit MNC: its third digit in byte 2's high nibble
    ],
)
def test_plmn_coding_follows_ts_24_008(mcc: str, mnc: str, coded: str) -> None:
    assert encode_plmn(mcc, mnc).hex().upper() == coded
    assert decode_plmn(bytes.fromhex(coded)) == (mcc, mnc)


def test_unused_plmn_decodes_to_none_and_non_bcd_is_rejected() -> None:
    assert decode_plmn(b"\xff\xff\xff") is None
    with pytest.raises(ValueError, match="not BCD"):
        decode_plmn(bytes.fromhex("A4F620"))


@pytest.mark.parametrize(("mcc", "mnc"), [("42", "02"), ("426", "2"), ("426", "0222"), ("4a6", "02")])
def test_encode_plmn_rejects_malformed_codes(mcc: str, mnc: str) -> None:
    with pytest.raises(ValueError):
        encode_plmn(mcc, mnc)


def test_oplmnwact_entries_keep_priority_order_and_access_technology_bits() -> None:
    entries = [PlmnWithAct("426", "02", ("utran", "eutran", "gsm")), PlmnWithAct("426", "04", ("ngran",))]
    content = encode_oplmnwact(entries)
    # TS 31.102 4.2.5: UTRAN '8000', E-UTRAN '4000', NG-RAN '0800', GSM '0080'; 8 entries minimum.
    assert content[:10].hex().upper() == "24F620C080" "24F6400800"
    assert len(content) == 40 and content[10:] == bytes.fromhex("FFFFFF0000") * 6
    assert decode_oplmnwact(content) == entries


def test_fplmn_is_padded_to_four_entries_and_grows_beyond() -> None:
    assert encode_fplmn([("426", "01")]) == bytes.fromhex("24F610") + b"\xff" * 9
    five = [("426", f"0{i}") for i in range(5)]
    assert len(encode_fplmn(five)) == 15 and decode_fplmn(encode_fplmn(five)) == five
    with pytest.raises(ValueError, match="cannot hold"):
        encode_fplmn(five, size=12)


plmns = st.tuples(st.from_regex(r"\A[0-9]{3}\Z"), st.from_regex(r"\A[0-9]{2,3}\Z"))


@given(st.lists(plmns, max_size=12))
def test_fplmn_round_trips(entries: list[tuple[str, str]]) -> None:
    assert decode_fplmn(encode_fplmn(entries)) == entries
