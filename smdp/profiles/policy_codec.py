"""The DER form of a travel policy (asn1/policy.asn, TravelPolicy) and its place in SGP.22 metadata.

SGP.22 (v2.4+, section 5.5.3 StoreMetadataRequest / 5.7.15 ProfileInfo) lets a Profile carry
service-specific data in ``serviceSpecificDataStoredInEuicc [34] VendorSpecificExtension``, a list of
(vendorOid, vendorSpecificData) pairs; the field sits after the extension marker of both types,
so an LPA or eUICC that predates it, or does not know our OID, skips it and still installs and
lists the Profile. Ours is one entry: vendorOid :data:`TRAVEL_POLICY_OID`, vendorSpecificData the
DER of one TravelPolicy.
"""

from __future__ import annotations

import functools
from typing import Any

import asn1tools

from smdp.codec.asn1 import ASN1_DIR, Asn1Error, compile_parsed, decode_exact
from smdp.codec.bits import bit_names, bit_string
from smdp.profiles.policy import (
    ACCESS_TECHNOLOGIES,
    BackgroundRules,
    CapScope,
    CountrySteering,
    DataCap,
    Network,
    Policy,
    PolicyError,
    PreferredNetwork,
)
from smdp.profiles.usim_files import decode_plmn, encode_plmn

__all__ = [
    "TRAVEL_POLICY_OID",
    "decode_policy",
    "encode_policy",
    "policy_extension",
    "policy_from_extension",
]

#: id-smdp-travelPolicy: 2.25.<UUID d47034e3-51d9-4b2d-a166-473c1cd1fa43>.1 (asn1/policy.asn).
TRAVEL_POLICY_OID = "2.25.282378945049981324092474276409026673219.1"

_ACTION_TO_ASN1 = {"suspend": "suspend", "throttle": "throttle", "notify": "notifyOnly"}
_ACTION_FROM_ASN1 = {v: k for k, v in _ACTION_TO_ASN1.items()}


@functools.cache
def policy_spec() -> asn1tools.compiler.Specification:
    """SmdpPolicyDefinitions, DER codec, compiled once, with the asn1tools fixes of smdp.codec.asn1
    like every other module (it has no DEFAULT values or tagged CHOICE references today; should it
    get one, the encoding is right from the start)."""
    return compile_parsed(asn1tools.parse_files([str(ASN1_DIR / "policy.asn")]))


def _network(data: bytes) -> Network:
    plmn = decode_plmn(bytes(data))
    if plmn is None:
        raise ValueError("unused PLMN identity 'FFFFFF' in a policy")
    return Network(*plmn)


def _to_asn1(policy: Policy) -> dict[str, Any]:
    value: dict[str, Any] = {"version": policy.version, "name": policy.name}
    if policy.validity_days is not None:
        value["validityDays"] = policy.validity_days
    value["dataCaps"] = [
        {
            "name": cap.name,
            "limitBytes": cap.limit_bytes,
            "period": cap.period,
            "scope": ("countries", list(cap.scope.countries)) if cap.scope.kind == "countries" else (cap.scope.kind, None),
            "alertPercents": list(cap.alerts),
            "action": (_ACTION_TO_ASN1[cap.action], cap.throttle_kbps if cap.action == "throttle" else None),
        }
        for cap in policy.caps
    ]
    value["backgroundData"] = {
        "wifiOnlyCategories": list(policy.background.wifi_only),
        "backgroundWhileRoaming": policy.background.allow_while_roaming,
    }
    value["steering"] = [
        {
            "mcc": c.mcc,
            "dataRoaming": c.data_roaming,
            "preferred": [
                {"plmn": encode_plmn(p.network.mcc, p.network.mnc), "accessTechnologies": bit_string(p.access, ACCESS_TECHNOLOGIES)}
                for p in c.preferred
            ],
            "forbidden": [encode_plmn(n.mcc, n.mnc) for n in c.forbidden],
        }
        for c in policy.steering
    ]
    return value


def _from_asn1(value: dict[str, Any], profile_policy_rules: tuple[str, ...]) -> Policy:
    caps = []
    for cap in value["dataCaps"]:
        scope_kind, scope_value = cap["scope"]
        action, rate = cap["action"]
        caps.append(DataCap(
            name=cap["name"],
            limit_bytes=cap["limitBytes"],
            period=cap["period"],
            scope=CapScope("countries", tuple(scope_value)) if scope_kind == "countries" else CapScope(scope_kind),
            alerts=tuple(cap["alertPercents"]),
            action=_ACTION_FROM_ASN1[action],
            throttle_kbps=rate if action == "throttle" else None,
        ))  # fmt: skip
    steering = tuple(
        CountrySteering(
            mcc=c["mcc"],
            data_roaming=c["dataRoaming"],
            preferred=tuple(
                PreferredNetwork(_network(p["plmn"]), tuple(bit_names(p["accessTechnologies"], ACCESS_TECHNOLOGIES)))
                for p in c["preferred"]
            ),
            forbidden=tuple(_network(n) for n in c["forbidden"]),
        )
        for c in value["steering"]
    )
    background = value["backgroundData"]
    return Policy(
        name=value["name"],
        caps=tuple(caps),
        background=BackgroundRules(tuple(background["wifiOnlyCategories"]), background["backgroundWhileRoaming"]),
        steering=steering,
        validity_days=value.get("validityDays"),
        profile_policy_rules=profile_policy_rules,
        version=value["version"],
    )


def encode_policy(policy: Policy) -> bytes:
    """TravelPolicy DER. The PPR names are not part of it: they travel in SGP.22's own
    profilePolicyRules field, where every eUICC enforces them."""
    return policy_spec().encode("TravelPolicy", _to_asn1(policy), check_constraints=True)


def decode_policy(der: bytes, profile_policy_rules: tuple[str, ...] = ()) -> Policy:
    """The Policy a TravelPolicy DER describes (PolicyError if it is not one)."""
    try:
        value = decode_exact(policy_spec(), "TravelPolicy", bytes(der))
        return _from_asn1(value, tuple(sorted(profile_policy_rules)))
    except (Asn1Error, ValueError, KeyError) as exc:
        raise PolicyError("TravelPolicy", f"does not decode: {exc}") from None


def policy_extension(policy: Policy) -> dict[str, Any]:
    """One VendorSpecificExtension entry (asn1tools form) carrying ``policy``."""
    return {"vendorOid": TRAVEL_POLICY_OID, "vendorSpecificData": encode_policy(policy)}


def policy_from_extension(entries: list[dict[str, Any]] | None, profile_policy_rules: tuple[str, ...] = ()) -> Policy | None:
    """The policy in a decoded ``serviceSpecificDataStoredInEuicc``, or None if there is none;
    entries under other vendors' OIDs are ignored, as SGP.22 asks of unknown service data."""
    for entry in entries or []:
        if entry.get("vendorOid") == TRAVEL_POLICY_OID:
            return decode_policy(bytes(entry["vendorSpecificData"]), profile_policy_rules)
    return None
