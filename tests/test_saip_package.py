"""SAIP profile packages (smdp.profiles.saip): the GSMA TS.48 test profiles decode, validate and
re-encode byte-identically; malformed packages fail with precise SaipErrors; identifier codings."""

from __future__ import annotations

import csv
import hashlib
from contextlib import suppress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smdp.codec.asn1 import saip
from smdp.codec.tlv import tlv
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import (
    SaipError,
    decode_header_iccid,
    decode_iccid,
    decode_imsi,
    decode_profile_package,
    encode_header_iccid,
    encode_iccid,
    encode_imsi,
    luhn_check_digit,
    split_profile_elements,
    validate_profile_package,
)
from tests.conftest import TS48_DIR

TS48 = TS48_DIR
NO_TS48 = f"GSMA TS.48 test profiles not found at {TS48}"


def _manifest() -> list[dict[str, str]]:
    if not (TS48 / "MANIFEST.tsv").is_file():
        return []
    with (TS48 / "MANIFEST.tsv").open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.skipif(not TS48.is_dir(), reason=NO_TS48)
@pytest.mark.parametrize("row", _manifest(), ids=lambda row: row["file"])
def test_ts48_profile_validates_with_the_manifest_iccid_imsi_and_pe_count(row: dict[str, str]) -> None:
    der = (TS48 / row["file"]).read_bytes()
    assert hashlib.sha256(der).hexdigest() == row["sha256"]
    package = validate_profile_package(der)
    assert package.iccid == row["iccid"]
    assert package.ef_iccid == row["iccid"]
    assert package.imsi == row["imsi"]
    assert len(package.elements) == int(row["pe_count"])
    assert f"{package.version[0]}.{package.version[1]}" == row["saip_version"]
    assert package.profile_type == "GSMA Generic eUICC Test Profile"
    assert package.der == der


@pytest.mark.skipif(not TS48.is_dir(), reason=NO_TS48)
@pytest.mark.parametrize("row", _manifest(), ids=lambda row: row["file"])
def test_ts48_profile_elements_re_encode_byte_identically(row: dict[str, str]) -> None:
    der = (TS48 / row["file"]).read_bytes()
    raws = split_profile_elements(der)
    assert b"".join(raws) == der
    for element in decode_profile_package(der).elements:
        assert saip().encode("ProfileElement", (element.name, element.value)) == element.raw, element.name


# --- malformed packages (built from the demo profile, so they need no GSMA data) -------

_DEMO = build_demo_profile("8949449999999990015", "001010000000001", bytes(16), bytes(16))


def _pes() -> list[bytes]:
    return split_profile_elements(_DEMO)


def _encode(name: str, value: dict[str, object]) -> bytes:
    return saip().encode("ProfileElement", (name, value))


def _replace(index: int, mutate) -> bytes:
    pes = _pes()
    package = decode_profile_package(_DEMO)
    element = package.elements[index]
    pes[index] = _encode(element.name, mutate(element.value))
    return b"".join(pes)


def test_truncated_package_names_the_offset() -> None:
    offset = len(_DEMO) - len(_pes()[-1])
    with pytest.raises(SaipError, match=f"not a sequence of DER TLVs: offset {offset}: tag 0xAA"):
        validate_profile_package(_DEMO[:-1])


def test_undecodable_pe_names_its_index_and_alternative() -> None:
    pes = _pes()
    pes[2] = tlv(0xA3, b"\x30\x00")  # pukCodes with an empty PE header
    with pytest.raises(SaipError, match=r"PE #2 \(pukCodes\) at offset \d+ does not decode"):
        validate_profile_package(b"".join(pes))


def test_unknown_pe_alternative_is_rejected() -> None:
    pes = _pes()
    pes.insert(5, tlv(0xBF30, b""))
    with pytest.raises(SaipError, match=r"PE #5 at offset .*tag BF30 is not a ProfileElement"):
        validate_profile_package(b"".join(pes))


def test_package_must_start_with_the_header() -> None:
    with pytest.raises(SaipError, match="PE #0 is 'mf'"):
        validate_profile_package(b"".join(_pes()[1:]))


def test_package_must_end_with_pe_end() -> None:
    with pytest.raises(SaipError, match="last PE #5 is 'akaParameter'"):
        validate_profile_package(b"".join(_pes()[:-1]))


def test_empty_package_is_rejected() -> None:
    with pytest.raises(SaipError, match="empty"):
        validate_profile_package(b"")


def test_pe_identification_numbers_must_be_unique() -> None:
    def same_number(value: dict) -> dict:
        return {**value, "pin-Header": {**value["pin-Header"], "identification": 2}}

    with pytest.raises(SaipError, match=r"PE #3 \(pinCodes\) reuses identification 2 of PE #2"):
        validate_profile_package(_replace(3, same_number))


def test_header_iccid_must_match_ef_iccid() -> None:
    def other_iccid(value: dict) -> dict:
        return {**value, "iccid": encode_header_iccid("8949449999999990028")}

    with pytest.raises(SaipError, match=r"ICCID 8949449999999990028 differs from EF\.ICCID content 8949449999999990015"):
        validate_profile_package(_replace(0, other_iccid))


def test_header_services_must_be_provided_by_the_package() -> None:
    pes = _pes()
    del pes[5]  # the Milenage PE-AKAParameter
    with pytest.raises(SaipError, match="service 'milenage' but no PE-AKAParameter configures algorithmID 1"):
        validate_profile_package(b"".join(pes))


def test_templates_used_must_be_listed_in_the_header() -> None:
    def only_mf_template(value: dict) -> dict:
        return {**value, "eUICC-Mandatory-GFSTEList": ["2.23.143.1.2.1"]}

    with pytest.raises(SaipError, match=r"PE #4 \(usim\) uses template 2.23.143.1.2.4"):
        validate_profile_package(_replace(0, only_mf_template))


def test_mf_must_directly_follow_the_header() -> None:
    pes = _pes()
    pes[1], pes[2] = pes[2], pes[1]
    with pytest.raises(SaipError, match="PE-MF is PE #2"):
        validate_profile_package(b"".join(pes))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_corrupted_package_either_validates_or_raises_saip_error(data: st.DataObject) -> None:
    package = bytearray(_DEMO)
    for _ in range(data.draw(st.integers(1, 3))):
        package[data.draw(st.integers(0, len(package) - 1))] = data.draw(st.integers(0, 255))
    with suppress(SaipError):
        validate_profile_package(bytes(package))


def test_saip_error_is_a_value_error() -> None:
    assert issubclass(SaipError, ValueError)


# --- identifiers -----------------------------------------------------------------------


def test_iccid_codings_match_the_ts48_profile_bytes() -> None:
    # GSMA TS.48 generic test profile: EF.ICCID content and ProfileHeader.iccid
    # (ts48v*-saip*.der, PE-MF ef-iccid and the header).
    assert encode_iccid("89000123456789012341") == bytes.fromhex("98001032547698103214")
    assert encode_header_iccid("89000123456789012341") == bytes.fromhex("89000123456789012341")
    assert decode_iccid(bytes.fromhex("98001032547698103214")) == "89000123456789012341"


def test_nineteen_digit_iccid_is_padded_with_f() -> None:
    assert encode_iccid("8949449999999990015") == bytes.fromhex("989444999999990910F5")
    assert encode_header_iccid("8949449999999990015") == bytes.fromhex("8949449999999990015F")
    assert decode_iccid(encode_iccid("8949449999999990015")) == "8949449999999990015"
    assert decode_header_iccid(bytes.fromhex("8949449999999990015F")) == "8949449999999990015"


@pytest.mark.parametrize("bad", ["", "89A0", "8" * 21, "８９"])  # noqa: RUF001 - fullwidth digits are the non-ASCII input under test
def test_encode_iccid_rejects_non_digits_and_wrong_lengths(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_iccid(bad)


def test_decode_iccid_rejects_non_bcd_content() -> None:
    with pytest.raises(ValueError, match="not BCD digits"):
        decode_iccid(bytes.fromhex("98F01032547698103214"))


def test_luhn_check_digit_completes_known_numbers() -> None:
    assert luhn_check_digit("8900012345678901234") == "1"  # TS.48 ICCID 89000123456789012341
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_check_digit("894944999999999001") == "5"


@pytest.mark.parametrize(
    ("imsi", "content"),
    [
        ("001010123456063", "080910101032540636"),  # TS.48 v1 to v5 EF.IMSI
        ("001010123456789", "080910101032547698"),  # TS.48 v6 and v7 EF.IMSI
        ("00101012345678", "0801101010325476F8"),
        ("262011234", "052926102143FFFFFF"),
    ],
)
def test_encode_imsi_follows_ts_31_102_and_decodes_back(imsi: str, content: str) -> None:
    assert encode_imsi(imsi) == bytes.fromhex(content)
    assert decode_imsi(bytes.fromhex(content)) == imsi


@pytest.mark.parametrize("bad", ["12345", "1" * 16, "00101x"])
def test_encode_imsi_rejects_malformed_imsis(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_imsi(bad)


def _demo_with_usim(change) -> bytes:  # type: ignore[no-untyped-def]
    der = build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16))
    package = decode_profile_package(der)
    parts = []
    for element in package.elements:
        if element.name == "usim":
            value = dict(element.value)
            change(value)
            parts.append(saip().encode("ProfileElement", ("usim", value)))
        else:
            parts.append(element.raw)
    return b"".join(parts)


def test_two_files_with_one_file_id_in_a_df_are_rejected() -> None:
    def clash(usim: dict) -> None:  # type: ignore[type-arg]
        usim["ef-imsi"] = [("fileDescriptor", {"fileID": bytes.fromhex("6F07")}), *usim["ef-imsi"]]
        usim["ef-spn"] = [("fileDescriptor", {"fileID": bytes.fromhex("6F07")}), *usim["ef-spn"]]

    with pytest.raises(SaipError, match=r"PE #4 \(usim\): ef-spn and ef-imsi both have file ID 6F07 in adf-usim"):
        validate_profile_package(_demo_with_usim(clash))


def test_content_beyond_the_declared_file_size_is_rejected() -> None:
    def overflow(usim: dict) -> None:  # type: ignore[type-arg]
        usim["ef-imsi"] = [("fileDescriptor", {"efFileSize": b"\x09"}), ("fillFileContent", bytes(9)),
                           ("fillFileOffset", 2), ("fillFileContent", b"\x01")]  # fmt: skip

    with pytest.raises(SaipError, match=r"ef-imsi: content reaches byte 12, beyond its declared size of 9 bytes"):
        validate_profile_package(_demo_with_usim(overflow))
