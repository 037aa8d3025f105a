"""Demo USIM profile (smdp.profiles.demo): built through the SAIP codec, valid, self-consistent."""

from __future__ import annotations

import pytest

from smdp.codec.asn1 import saip
from smdp.profiles.demo import USIM_AID, build_demo_profile
from smdp.profiles.saip import validate_profile_package

ICCID = "8949449999999990015"
IMSI = "001010000000001"
KI = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
OPC = bytes.fromhex("F0E0D0C0B0A090807060504030201000")


def test_demo_profile_validates_and_carries_the_given_identifiers() -> None:
    package = validate_profile_package(build_demo_profile(ICCID, IMSI, KI, OPC))
    assert package.iccid == ICCID
    assert package.ef_iccid == ICCID
    assert package.imsi == IMSI
    assert package.version == (2, 3)
    assert package.mandatory_services == {"usim", "milenage"}
    assert [e.name for e in package.elements] == [
        "header", "mf", "pukCodes", "pinCodes", "usim", "akaParameter", "end",
    ]


def test_demo_profile_elements_re_encode_byte_identically() -> None:
    package = validate_profile_package(build_demo_profile(ICCID, IMSI, KI, OPC))
    for element in package.elements:
        assert saip().encode("ProfileElement", (element.name, element.value)) == element.raw


def test_demo_profile_configures_milenage_with_the_given_ki_and_opc() -> None:
    package = validate_profile_package(build_demo_profile(ICCID, IMSI, KI, OPC))
    (aka,) = package.named("akaParameter")
    kind, parameters = aka.value["algoConfiguration"]
    assert kind == "algoParameter"
    assert parameters["algorithmID"] == 1
    assert (parameters["key"], parameters["opc"]) == (KI, OPC)
    assert parameters["rotationConstants"] == bytes.fromhex("4000204060")  # template default


def test_demo_profile_declares_the_usim_application_in_ef_dir_and_adf() -> None:
    package = validate_profile_package(build_demo_profile(ICCID, IMSI, KI, OPC))
    (usim,) = package.named("usim")
    (adf,) = [item for kind, item in usim.value["adf-usim"] if kind == "fileDescriptor"]
    assert adf["dfName"] == USIM_AID
    (mf,) = package.named("mf")
    ef_dir = b"".join(item for kind, item in mf.value["ef-dir"] if kind == "fillFileContent")
    assert USIM_AID in ef_dir


def test_demo_profile_writes_mnc_length_to_ef_ad() -> None:
    package = validate_profile_package(build_demo_profile(ICCID, "310150123456789", KI, OPC, mnc_length=3))
    (usim,) = package.named("usim")
    assert usim.value["ef-ad"] == [("fillFileContent", b"\x00\x00\x00\x03")]


def test_demo_profile_is_deterministic() -> None:
    assert build_demo_profile(ICCID, IMSI, KI, OPC) == build_demo_profile(ICCID, IMSI, KI, OPC)


@pytest.mark.parametrize(
    ("iccid", "imsi", "ki", "opc", "mnc_length"),
    [
        (ICCID, IMSI, KI[:15], OPC, 2),
        (ICCID, IMSI, KI, OPC + b"\x00", 2),
        ("89ABC", IMSI, KI, OPC, 2),
        (ICCID, "0010100000000012", KI, OPC, 2),
        (ICCID, IMSI, KI, OPC, 4),
    ],
)
def test_demo_profile_rejects_malformed_inputs(iccid: str, imsi: str, ki: bytes, opc: bytes, mnc_length: int) -> None:
    with pytest.raises(ValueError):
        build_demo_profile(iccid, imsi, ki, opc, mnc_length=mnc_length)
