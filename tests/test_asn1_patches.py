"""The asn1tools fixes of smdp.codec.asn1, each on the smallest value it changes, checked against DER
written out by hand from X.690. They break if a new asn1tools release moves what they patch (the
version range in pyproject.toml is the one these pass on); the ``*_alone_*`` tests show what the
installed asn1tools does without the fix, so a release that fixes a defect itself is noticed too.

X.690 reminders used below: a TLV is tag, length, contents; a context tag [n] is 0x80 + n
(primitive) or 0xA0 + n (constructed), and from 31 up takes a second octet ([56] constructed:
'BF 38'); DER omits a component equal to its DEFAULT (11.5).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asn1tools
import pytest

from smdp.codec import asn1

MODULE = """
Patches DEFINITIONS AUTOMATIC TAGS ::= BEGIN
    Class ::= INTEGER { test(0), provisioning(1), operational(2) }
    Meta ::= SEQUENCE { name UTF8String, class Class DEFAULT operational }
    Later ::= SEQUENCE { a INTEGER, ..., b Class DEFAULT provisioning, [[ c Class DEFAULT test ]] }
    Nested ::= CHOICE { list SEQUENCE OF Meta, later [5] Later }
    Aka ::= SEQUENCE { id INTEGER, sqnInit SEQUENCE (SIZE(32)) OF OCTET STRING (SIZE(6)) DEFAULT '000000000000'H }
    Answer ::= [56] CHOICE { ok [0] INTEGER, error [1] INTEGER }
    Tagged ::= SEQUENCE { id [0] INTEGER, answer [56] Answer }
    Automatic ::= SEQUENCE { id INTEGER, answer Answer }
    Numbers ::= SEQUENCE OF INTEGER
    Oid ::= OBJECT IDENTIFIER
    Text ::= UTF8String
END
"""

EXPLICIT_MODULE = """
Explicit DEFINITIONS EXPLICIT TAGS ::= BEGIN
    Answer ::= [56] CHOICE { ok [0] INTEGER, error [1] INTEGER }
    Tagged ::= SEQUENCE { id [0] INTEGER, answer [56] Answer }
END
"""


def _patched(text: str = MODULE) -> asn1tools.compiler.Specification:
    return asn1.compile_parsed(asn1tools.parse_string(text))


def _alone(text: str = MODULE) -> asn1tools.compiler.Specification:
    return asn1tools.compile_dict(asn1tools.parse_string(text), "der")


def _der(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@contextmanager
def _fails_after(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"decoding did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- fix 3: DEFAULT values of the component's type (_fix_default, _named_numbers, _walk) -------------

# Meta { name "A", class operational }: 30 03 | 80 01 41 (name [0]); class [1] = its DEFAULT, omitted.
META_DEFAULT = "30 03 80 01 41"


@pytest.mark.parametrize(
    ("type_name", "value", "der"),
    [
        ("Meta", {"name": "A", "class": 2}, META_DEFAULT),
        ("Meta", {"name": "A", "class": 0}, "30 06 80 01 41 81 01 00"),  # test(0) is not the DEFAULT
        # Reached through a CHOICE alternative and a SEQUENCE OF (_walk's members / element_type):
        ("Nested", ("list", [{"name": "A", "class": 2}]), "30 05 " + META_DEFAULT),
        # ... and after the extension marker, alone and in an addition group (_walk's additions):
        ("Nested", ("later", {"a": 1, "b": 1, "c": 0}), "A5 03 80 01 01"),
        ("Later", {"a": 1, "b": 2, "c": 1}, "30 09 80 01 01 81 01 02 82 01 01"),
    ],
)
def test_a_named_number_default_is_omitted_and_decodes_as_a_number(type_name: str, value: Any, der: str) -> None:
    spec = _patched()
    assert spec.encode(type_name, value) == _der(der)
    assert spec.decode(type_name, _der(der)) == value


def test_named_number_default_alone_decodes_as_a_string_and_is_encoded() -> None:
    alone = _alone()
    assert alone.decode("Meta", _der(META_DEFAULT)) == {"name": "A", "class": "operational"}
    assert alone.encode("Meta", {"name": "A", "class": 2}) == _der("30 06 80 01 41 81 01 02")


def test_a_default_that_names_no_number_is_refused_at_compile_time() -> None:
    broken = MODULE.replace("DEFAULT operational", "DEFAULT vip")
    with pytest.raises(RuntimeError, match="cannot resolve DEFAULT vip"):
        _patched(broken)


def test_sqn_init_default_is_32_zero_sqns() -> None:
    # Aka { id 1, sqnInit 32 x '000000000000' } = DEFAULT: 30 03 | 80 01 01.
    spec = _patched()
    zeros = [bytes(6)] * 32
    assert spec.encode("Aka", {"id": 1, "sqnInit": zeros}) == _der("30 03 80 01 01")
    assert spec.decode("Aka", _der("30 03 80 01 01")) == {"id": 1, "sqnInit": zeros}
    other = [bytes(5) + b"\x20", *zeros[1:]]
    encoded = spec.encode("Aka", {"id": 1, "sqnInit": other})
    # sqnInit [1] present: A1 82 01 00 (32 x 8 octets) then '04 06 000000000020' first.
    assert encoded[:13] == _der("30 82 01 07 80 01 01 A1 82 01 00 04 06") and encoded[13:19] == other[0]
    assert spec.decode("Aka", encoded)["sqnInit"] == other


def test_sqn_init_default_alone_is_a_string() -> None:
    assert _alone().decode("Aka", _der("30 03 80 01 01"))["sqnInit"] == "0x000000000000"


def test_the_real_modules_defaults_are_fixed() -> None:
    # SGP.22 StoreMetadataRequest 'BF25': iccid '5A', serviceProviderName '91', profileName '92';
    # profileClass [21] DEFAULT operational absent.
    der = _der("BF25 10 5A0A 98001032547698103214 9100 9200")
    value = {"iccid": _der("98001032547698103214"), "serviceProviderName": "", "profileName": ""}
    assert asn1.rsp().encode("StoreMetadataRequest", {**value, "profileClass": 2}) == der
    assert asn1.rsp().decode("StoreMetadataRequest", der)["profileClass"] == 2
    # SAIP PE-AKAParameter in ProfileElement [4]: aka-header [0] { identification [1] 1 },
    # algoConfiguration [1] (an untagged CHOICE: explicit) holding algoParameter [1] { algorithmID 1,
    # algorithmOptions '00', key, opc (16 zero octets each) }; sqnOptions ... sqnInit all DEFAULT, absent.
    aka = {"aka-header": {"identification": 1}, "algoConfiguration": ("algoParameter", {
        "algorithmID": 1, "algorithmOptions": b"\x00", "key": bytes(16), "opc": bytes(16)})}  # fmt: skip
    pe = _der("A4 33 A0 03 81 01 01 A1 2C A1 2A 80 01 01 81 01 00 82 10" + "00" * 16 + "83 10" + "00" * 16)
    assert asn1.saip().encode("ProfileElement", ("akaParameter", aka)) == pe
    assert asn1.saip().decode("ProfileElement", pe)[1]["sqnInit"] == [bytes(6)] * 32


# --- fix 4: a tag on a reference to a tagged CHOICE is implicit (_collapse_implicit_choice_tag) -------


@pytest.mark.parametrize(
    ("type_name", "value", "der"),
    [
        # [56] replaces Answer's own [56]: one 'BF 38', holding ok [0] 5.
        ("Tagged", {"id": 1, "answer": ("ok", 5)}, "30 09 80 01 01 BF 38 03 80 01 05"),
        # The automatic [1] replaces it the same way: 'A1' alone.
        ("Automatic", {"id": 1, "answer": ("error", 2)}, "30 08 80 01 01 A1 03 81 01 02"),
        # The CHOICE type itself keeps its tag, explicit (X.680 31.2.7).
        ("Answer", ("ok", 5), "BF 38 03 80 01 05"),
    ],
)
def test_a_tag_on_a_tagged_choice_reference_replaces_its_tag(type_name: str, value: Any, der: str) -> None:
    spec = _patched()
    assert spec.encode(type_name, value) == _der(der)
    assert spec.decode(type_name, _der(der)) == value


def test_tagged_choice_reference_alone_is_tagged_twice() -> None:
    alone = _alone()
    assert alone.encode("Tagged", {"id": 1, "answer": ("ok", 5)}) == _der("30 0C 80 01 01 BF 38 06 BF 38 03 80 01 05")
    assert alone.encode("Automatic", {"id": 1, "answer": ("error", 2)}) == _der("30 0B 80 01 01 A1 06 BF 38 03 81 01 02")


def test_in_an_explicit_tags_module_both_tags_stay() -> None:
    # EXPLICIT TAGS: every tag is explicit, so "[56] Answer" wraps Answer's own [56], and [0] wraps
    # the INTEGER's universal '02'.
    der = _der("30 10 A0 03 02 01 01 BF 38 08 BF 38 05 A0 03 02 01 05")
    assert _patched(EXPLICIT_MODULE).encode("Tagged", {"id": 1, "answer": ("ok", 5)}) == der


def test_the_real_module_carries_one_bf38() -> None:
    # AuthenticateClientRequest 'BF3B' { transactionId [0] '01', authenticateServerResponse [56]
    # authenticateResponseError [1] { transactionId [0] '01', authenticateErrorCode 1 } }
    error = ("authenticateResponseError", {"transactionId": b"\x01", "authenticateErrorCode": 1})
    encoded = asn1.rsp().encode("AuthenticateClientRequest", {"transactionId": b"\x01", "authenticateServerResponse": error})
    assert encoded == _der("BF3B 0E 80 01 01 BF38 08 A1 06 80 01 01 02 01 01")


# --- fix 1: OBJECT IDENTIFIER decoding (X.690 8.19.4) ---------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "der"),
    [
        ("2.999.10", "06 03 88 37 0A"),  # first subidentifier 40 * 2 + 999 = 1079 = 0x88 0x37
        ("2.40.0", "06 02 78 00"),  # 120: second arc 40 under arc 2
        ("1.39.5", "06 02 4F 05"),  # 79: under arc 1 the second arc stays below 40
        ("1.2.840.10045.3.1.7", "06 08 2A 86 48 CE 3D 03 01 07"),
    ],
)
def test_object_identifiers_decode_per_x690(oid: str, der: str) -> None:
    spec = _patched()
    assert spec.encode("Oid", oid) == _der(der)
    assert spec.decode("Oid", _der(der)) == oid


def test_an_oid_ending_inside_a_subidentifier_is_a_decode_error() -> None:
    with pytest.raises(asn1tools.DecodeError, match="ends inside a subidentifier"):
        _patched().decode("Oid", _der("06 02 88 B7"))


# --- fix 2: no endless loop in SEQUENCE OF, text errors are decode errors ------------------------------


def test_a_wrong_tag_inside_a_sequence_of_is_a_decode_error_not_a_hang() -> None:
    # SEQUENCE OF INTEGER holding an OCTET STRING: 30 03 | 04 01 00.
    with _fails_after(5), pytest.raises(asn1tools.DecodeError, match="unexpected tag 0401"):
        _patched().decode("Numbers", _der("30 03 04 01 00"))


def test_an_element_running_past_its_sequence_of_is_a_decode_error() -> None:
    # The list holds 3 octets, its INTEGER claims 2 value octets more than the list has.
    with _fails_after(5), pytest.raises(asn1tools.DecodeError, match="runs past the end"):
        _patched().decode("Numbers", _der("30 03 02 03 01 02 03"))


def test_invalid_utf8_is_a_decode_error() -> None:
    assert _patched().decode("Text", _der("0C 02 C3 A9")) == "é"
    with pytest.raises(asn1tools.DecodeError, match="invalid UTF8String"):
        _patched().decode("Text", _der("0C 01 FF"))
