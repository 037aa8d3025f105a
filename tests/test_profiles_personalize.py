"""Personalization of SAIP templates (smdp.profiles.personalize, smdp.profiles.generate): every
per-profile value lands in its PE, steering files land in EF.OPLMNwACT / EF.FPLMN, and generated
identities are unique and valid."""

from __future__ import annotations

import pytest

from smdp.crypto.milenage import compute_opc
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.generate import IdentityRange, new_personalization
from smdp.profiles.inspect import file_content
from smdp.profiles.personalize import Personalization, SteeringFiles, Template
from smdp.profiles.saip import (
    SaipError,
    decode_iccid,
    encode_iccid,
    luhn_check_digit,
    validate_profile_package,
)
from smdp.profiles.usim_files import PlmnWithAct, decode_fplmn, decode_oplmnwact
from tests.conftest import TS48_DIR

TS48 = TS48_DIR
STEERING = SteeringFiles([PlmnWithAct("426", "02", ("utran", "eutran")), PlmnWithAct("426", "04", ("eutran",))],
                         [("426", "01")])  # fmt: skip


def ts48_template() -> bytes:
    path = TS48 / "ts48v7-saip2.3-bertlv-suci.der"
    if not path.is_file():
        pytest.skip(f"GSMA TS.48 test profile not found at {path}")
    return path.read_bytes()


def _values(template: Template, n: int = 7) -> Personalization:
    body = f"89490000000000{n:05d}"
    codes = {name: str(n % 10) * length for name, length in template.code_lengths.items()}
    return Personalization(body + luhn_check_digit(body), f"0010100000{n:05d}", bytes([n]) * 16, bytes([n + 1]) * 16, codes)


def test_ts48_template_personalizes_every_value_in_its_pe() -> None:
    template = Template(ts48_template(), steering=STEERING)
    values = _values(template)
    package = validate_profile_package(template.personalize(values))
    assert package.iccid == package.ef_iccid == values.iccid
    assert package.imsi == values.imsi
    for aka in package.named("akaParameter"):  # the USIM's and the ISIM's
        _kind, parameters = aka.value["algoConfiguration"]
        assert (parameters["algorithmID"], parameters["key"], parameters["opc"]) == (1, values.ki, values.opc)
    assert "milenage" in package.mandatory_services and "usim-test-algorithm" not in package.mandatory_services
    pins = {e["keyReference"]: e["pinValue"] for pe in package.named("pinCodes") for e in pe.value["pinCodes"][1]}
    assert pins[0x01] == values.codes["PIN1"].encode() + b"\xff" * 4 and pins[0x0A] == values.codes["ADM1"].encode()
    puks = {e["keyReference"]: e["pukValue"] for e in package.named("pukCodes")[0].value["pukCodes"]}
    assert puks == {0x01: values.codes["PUK1"].encode(), 0x81: values.codes["PUK2"].encode()}
    usim = package.named("usim")[0].value
    assert file_content(usim["ef-acc"]) == (1 << int(values.imsi[-1])).to_bytes(2, "big")
    assert decode_fplmn(file_content(usim["ef-fplmn"])) == [("426", "01")]
    assert decode_oplmnwact(file_content(package.named("opt-usim")[0].value["ef-oplmnwact"])) == STEERING.oplmnwact
    assert file_content(usim["ef-ust"])[5] & 0x02  # service 42 announced


def test_template_algorithm_keeps_the_ts48_test_algorithm_and_sets_the_key() -> None:
    template = Template(ts48_template(), algorithm="template")
    package = validate_profile_package(template.personalize(_values(template)))
    _kind, parameters = package.named("akaParameter")[0].value["algoConfiguration"]
    assert parameters["algorithmID"] == 3 and parameters["key"] == bytes([7]) * 16
    assert "usim-test-algorithm" in package.mandatory_services


def test_pes_without_per_profile_values_keep_their_template_bytes() -> None:
    der = ts48_template()
    original = validate_profile_package(der)
    package = validate_profile_package(Template(der).personalize(_values(Template(der))))
    unchanged = {"telecom", "genericFileManagement", "csim", "isim", "securityDomain", "rfm", "end"}
    for before, after in zip(original.elements, package.elements, strict=True):
        if before.name in unchanged:
            assert after.raw == before.raw


def test_a_template_without_opt_usim_gets_one_for_the_steering_list() -> None:
    demo = build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16))
    template = Template(demo, steering=STEERING)
    package = validate_profile_package(template.personalize(_values(template, 3)))
    (opt,) = package.named("opt-usim")
    assert [e.name for e in package.elements].index("opt-usim") == [e.name for e in package.elements].index("usim") + 1
    assert "2.23.143.1.2.5" in package.mandatory_templates
    assert decode_oplmnwact(file_content(opt.value["ef-oplmnwact"])) == STEERING.oplmnwact
    assert len({e.identification for e in package.elements[1:]}) == len(package.elements) - 1


def test_malformed_templates_are_rejected_with_the_reason() -> None:
    with pytest.raises(SaipError, match="must start with the ProfileHeader"):
        Template(ts48_template()[162:])  # the ProfileHeader (162 bytes) cut off
    with pytest.raises(SaipError, match="not a sequence of DER TLVs"):
        Template(ts48_template()[:-3])


def test_one_thousand_generated_identities_are_unique_and_valid() -> None:
    template = Template(build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16)))
    op = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
    generated = [new_personalization(iccid, imsi, template.code_lengths, op)
                 for iccid, imsi in IdentityRange("894900000000000000", "001010000000001", 1000)]  # fmt: skip
    assert len({g.iccid for g in generated}) == len({g.imsi for g in generated}) == 1000
    assert len({g.ki for g in generated}) == len({g.opc for g in generated}) == 1000
    for g in generated:
        assert len(g.iccid) == 19 and luhn_check_digit(g.iccid[:-1]) == g.iccid[-1]
        assert decode_iccid(encode_iccid(g.iccid)) == g.iccid
        assert g.opc == compute_opc(g.ki, op) and len(g.imsi) == 15 and g.imsi.startswith("00101")


@pytest.mark.parametrize(
    ("iccid", "imsi", "count", "message"),
    [
        ("8949", "001010000000001", 1, "18 or 19 ICCID digits"),
        ("123456789012345678", "001010000000001", 1, "does not start with 89"),
        ("899999999999999999", "001010000000001", 2, "leave the 89 prefix"),
        ("894900000000000000", "001019999999999", 2, "leave its MCC/MNC"),
        ("894900000000000000", "00101", 1, "6 to 15 digits"),
        ("894900000000000000", "001010000000001", 0, "at least 1"),
    ],
)
def test_identity_ranges_are_checked(iccid: str, imsi: str, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IdentityRange(iccid, imsi, count)
