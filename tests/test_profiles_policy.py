"""Travel policy documents (smdp.profiles.policy), their DER form (asn1/policy.asn) and their place in
SGP.22 metadata (StoreMetadataRequest.serviceSpecificDataStoredInEuicc)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import asn1tools
import pytest

from smdp.codec import asn1
from smdp.codec.bits import bit_names
from smdp.profiles.policy import (
    ACCESS_TECHNOLOGIES,
    APP_CATEGORIES,
    PERIODS,
    Network,
    PolicyError,
    load_policy,
    parse_policy,
)
from smdp.profiles.policy_codec import TRAVEL_POLICY_OID, decode_policy, encode_policy, policy_from_extension
from smdp.rsp.metadata import store_metadata_request

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "policies"
BAHRAIN = EXAMPLES / "bahrain-week.json"


def bahrain_doc() -> dict[str, Any]:
    return json.loads(BAHRAIN.read_text())


@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".json", ".toml") and p.name != "schema.json"),
    ids=lambda p: p.name,
)
def test_every_example_policy_is_valid_and_round_trips(path: Path) -> None:
    policy = load_policy(path)
    assert parse_policy(policy.to_json()) == policy
    assert decode_policy(encode_policy(policy), policy.profile_policy_rules) == policy


def test_bahrain_example_is_the_travellers_case() -> None:
    policy = load_policy(BAHRAIN)
    (cap,) = policy.caps
    assert (cap.limit_bytes, cap.period, cap.scope.kind, cap.scope.countries) == (5 * 1000**3, "validity", "countries", ("426",))
    assert cap.alerts == (50, 80, 100) and cap.action == "suspend"
    assert set(policy.background.wifi_only) == {"cloud-backup", "video"}
    country = policy.country("426")
    assert country is not None and country.data_roaming
    assert [p.network.plmn for p in country.preferred] == ["426-02", "426-04"]
    assert [n.plmn for n in country.forbidden] == ["426-01"]


def test_published_schema_lists_the_same_choices_as_the_validator() -> None:
    schema = json.loads((EXAMPLES / "schema.json").read_text())
    defs = schema["$defs"]
    assert tuple(defs["appCategory"]["enum"]) == APP_CATEGORIES
    assert tuple(defs["accessTechnology"]["enum"]) == ACCESS_TECHNOLOGIES
    assert tuple(defs["dataCap"]["properties"]["period"]["enum"]) == PERIODS
    top = set(schema["properties"])
    assert top == {"$schema", "version", "name", "description", "validityDays", "dataCaps", "backgroundData",
                   "steering", "profilePolicyRules"}  # fmt: skip


def _broken(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(bahrain_doc())
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (lambda d: d.pop("name"), "name", "is required"),
        (lambda d: d.update(version=2), "version", "not a policy version"),
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
        (lambda d: d["dataCaps"][0].update(limit="5 gigs"), "dataCaps[0].limit", "is not a quantity"),
        (lambda d: d["dataCaps"][0].update(limit=0), "dataCaps[0].limit", "at least 1 byte"),
        (lambda d: d["dataCaps"][0].update(period="fortnight"), "dataCaps[0].period", "is not one of"),
        (lambda d: d["dataCaps"][0].update(alerts=[50, 120]), "dataCaps[0].alerts[1]", "outside 1..100"),
        (lambda d: d["dataCaps"][0].update(alerts=[80, 50]), "dataCaps[0].alerts", "ascending"),
        (lambda d: d["dataCaps"][0].update(action="throttle"), "dataCaps[0].throttleKbps", "is required"),
        (lambda d: d["dataCaps"][0].update(throttleKbps=64), "dataCaps[0].throttleKbps", "only applies"),
        (lambda d: d["dataCaps"][0].update(scope={"countries": ["42"]}), "dataCaps[0].scope.countries[0]", "3 digits"),
        (lambda d: d["dataCaps"][0].update(scope="abroad"), "dataCaps[0].scope", "is not one of"),
        (lambda d: d["backgroundData"].update(wifiOnly=["vidoe"]), "backgroundData.wifiOnly[0]", "is not one of"),
        (lambda d: d["backgroundData"].update(allowWhileRoaming="no"), "backgroundData.allowWhileRoaming", "true or false"),
        (lambda d: d["steering"][0]["preferred"][0].update(plmn="42602"), "steering[0].preferred[0].plmn", "MCC-MNC"),
        (lambda d: d["steering"][0]["preferred"][1].update(plmn="427-04"), "steering[0].preferred[1].plmn", "not a network of country 426"),
        (lambda d: d["steering"][0]["forbidden"].append("426-02"), "steering[0].forbidden[1]", "also a preferred"),
        (lambda d: d["steering"][0]["preferred"][0].update(access=["5g"]), "steering[0].preferred[0].access[0]", "is not one of"),
        (lambda d: d["steering"].append({"mcc": "426"}), "steering[1].mcc", "already steered"),
        (lambda d: d.update(steering={"mcc": "426"}), "steering", "must be a list"),
    ],
)  # fmt: skip
def test_malformed_policy_is_rejected_naming_the_field(change: Any, path: str, reason: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(_broken(change))
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(caught.value).startswith(path + ": ")


def test_invalid_json_and_toml_files_are_rejected_with_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("{")
    (tmp_path / "p.toml").write_text("name = ")
    with pytest.raises(PolicyError, match=r"p\.json is not valid JSON"):
        load_policy(tmp_path / "p.json")
    with pytest.raises(PolicyError, match=r"p\.toml is not valid TOML"):
        load_policy(tmp_path / "p.toml")


def test_network_parse_accepts_device_digits_only_when_asked() -> None:
    assert Network.parse("42602", digits=True) == Network("426", "02")
    assert Network.parse("310260", digits=True) == Network("310", "260")
    with pytest.raises(PolicyError):
        Network.parse("42602")


def test_policy_travels_in_store_metadata_under_our_oid_with_its_pprs() -> None:
    doc = bahrain_doc() | {"profilePolicyRules": ["ppr2"]}
    der = store_metadata_request("8949000000000000018", {"serviceProviderName": "Gulf", "profileName": "Week", "policy": doc})
    value = asn1.rsp().decode("StoreMetadataRequest", der)
    assert bit_names(value["profilePolicyRules"], ("pprUpdateControl", "ppr1", "ppr2")) == ["ppr2"]
    (entry,) = value["serviceSpecificDataStoredInEuicc"]
    assert entry["vendorOid"] == TRAVEL_POLICY_OID
    assert policy_from_extension(value["serviceSpecificDataStoredInEuicc"], ("ppr2",)) == parse_policy(doc)


def test_other_vendors_extensions_are_ignored() -> None:
    assert policy_from_extension([{"vendorOid": "1.2.3.4", "vendorSpecificData": b"\x05\x00"}]) is None
    assert policy_from_extension(None) is None


# StoreMetadataRequest as SGP.22 v2.2 defines it: no serviceSpecificDataStoredInEuicc, only the
# extension marker. An LPA or eUICC built on it must still read our metadata.
V22_METADATA = """
V22 DEFINITIONS AUTOMATIC TAGS ::= BEGIN
StoreMetadataRequest ::= [37] SEQUENCE {
    iccid [APPLICATION 26] OCTET STRING (SIZE(10)),
    serviceProviderName [17] UTF8String (SIZE(0..32)),
    profileName [18] UTF8String (SIZE(0..64)),
    iconType [19] INTEGER OPTIONAL,
    icon [20] OCTET STRING (SIZE(0..1024)) OPTIONAL,
    profileClass [21] INTEGER DEFAULT 2,
    notificationConfigurationInfo [22] SEQUENCE OF SEQUENCE {
        profileManagementOperation BIT STRING, notificationAddress UTF8String } OPTIONAL,
    profileOwner [23] SEQUENCE { mccMnc OCTET STRING } OPTIONAL,
    profilePolicyRules [25] BIT STRING OPTIONAL,
    ...
}
END
"""


def test_an_sgp22_v2_2_reader_that_does_not_know_the_extension_still_decodes_the_metadata() -> None:
    der = store_metadata_request("8949000000000000018", {"serviceProviderName": "Gulf", "profileName": "Week",
                                                          "policy": bahrain_doc()})  # fmt: skip
    old = asn1tools.compile_string(V22_METADATA, "der")
    value = old.decode("StoreMetadataRequest", der)
    assert (value["serviceProviderName"], value["profileName"]) == ("Gulf", "Week")


def test_a_policy_that_does_not_decode_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="TravelPolicy: does not decode"):
        decode_policy(b"\x30\x03\x02\x01\x01")
