"""Named-bit BIT STRINGs (smdp.codec.bits): DER's trailing-zero rule, lenient decoding, and the
DER bytes asn1tools makes of the values, checked against X.690 by hand."""

from __future__ import annotations

import itertools

import pytest

from smdp.codec import asn1
from smdp.codec.bits import bit_names, bit_string

PPRS = ("pprUpdateControl", "ppr1", "ppr2")  # PprIds (SGP.22 2.4a.1.1)
EVENTS = ("notificationInstall", "notificationEnable", "notificationDisable", "notificationDelete")
WIDE = tuple(f"bit{n}" for n in range(12))  # more than one octet, like UICCCapability


def _subsets(alphabet: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [c for n in range(len(alphabet) + 1) for c in itertools.combinations(alphabet, n)]


@pytest.mark.parametrize("alphabet", [PPRS, EVENTS, WIDE], ids=["PprIds", "NotificationEvent", "12 bits"])
def test_every_set_of_names_round_trips(alphabet: tuple[str, ...]) -> None:
    for names in _subsets(alphabet):
        assert bit_names(bit_string(names, alphabet), alphabet) == list(names)


@pytest.mark.parametrize(
    ("names", "value"),
    [
        (["ppr1"], (b"\x40", 2)),  # bit 2 (ppr2) is 0 and trailing: not counted
        (["pprUpdateControl"], (b"\x80", 1)),
        (["ppr2"], (b"\x20", 3)),
        (["ppr2", "ppr1"], (b"\x60", 3)),
        (["ppr1", "ppr1"], (b"\x40", 2)),  # repetition changes nothing
    ],
)
def test_trailing_zero_bits_are_removed(names: list[str], value: tuple[bytes, int]) -> None:
    assert bit_string(names, PPRS) == value


def test_a_bit_in_the_second_octet_makes_two_octets() -> None:
    assert bit_string(["bit9", "bit0"], WIDE) == (b"\x80\x40", 10)
    assert bit_string(["bit7"], WIDE) == (b"\x01", 8)


def test_no_names_is_the_empty_bit_string() -> None:
    assert bit_string([], PPRS) == (b"", 0)
    assert bit_string((), EVENTS) == (b"", 0)
    assert bit_names((b"", 0), PPRS) == []


def test_an_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'ppr3' is not a named bit .*pprUpdateControl, ppr1, ppr2"):
        bit_string(["ppr1", "ppr3"], PPRS)


def test_decoding_ignores_unused_bits_unnamed_bits_and_a_count_past_the_octets() -> None:
    # '07 02 05 7F': 5 unused bits that BER does not require to be 0 (DER does), so only bits 0-2 count.
    assert bit_names((b"\x7f", 3), PPRS) == ["ppr1", "ppr2"]
    # A later version of the type with a bit this alphabet has no name for.
    assert bit_names((b"\x50", 4), PPRS) == ["ppr1"]
    assert bit_names((b"\x40", 16), PPRS) == ["ppr1"]


def test_der_encoding_is_what_x690_prescribes() -> None:
    # X.690 8.6.2: initial octet = number of unused bits in the last octet, then the bits.
    # PprIds and NotificationEvent are untagged BIT STRINGs: universal tag '03'.
    spec = asn1.rsp()
    assert spec.encode("PprIds", bit_string(["ppr1"], PPRS)) == bytes.fromhex("03020640")
    assert spec.encode("PprIds", bit_string([], PPRS)) == bytes.fromhex("030100")
    assert spec.encode("NotificationEvent", bit_string(["notificationDelete"], EVENTS)) == bytes.fromhex("03020410")
    assert spec.decode("NotificationEvent", bytes.fromhex("03020410")) == (b"\x10", 4)
    assert bit_names(spec.decode("PprIds", bytes.fromhex("03020560")), PPRS) == ["ppr1", "ppr2"]
