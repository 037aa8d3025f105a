"""Profile metadata (SGP.22 section 5.5.3 StoreMetadataRequest) from the JSON form kept in the database.

JSON form::

    {"serviceProviderName": "...", "profileName": "...", "profileClass": "test|provisioning|operational",
     "iconType": "jpg|png", "icon": "<base64>", "profilePolicyRules": ["ppr1", "ppr2"],
     "notificationConfigurationInfo": [{"events": ["install", "enable", "disable", "delete"], "address": "host"}],
     "policy": {<travel policy document, see smdp.profiles.policy>}}

The policy goes into serviceSpecificDataStoredInEuicc (SGP.22 v2.4+, after the extension marker, so older
LPAs and eUICCs skip it) under our OID, and its profilePolicyRules join the standard PPR bits.
"""

from __future__ import annotations

from typing import Any

from smdp.codec import asn1, b64
from smdp.profiles.policy import parse_policy
from smdp.profiles.policy_codec import policy_extension
from smdp.profiles.saip import encode_iccid

PROFILE_CLASSES = {"test": 0, "provisioning": 1, "operational": 2}
ICON_TYPES = {"jpg": 0, "png": 1}
PPR_BITS = ("pprUpdateControl", "ppr1", "ppr2")  # PprIds ::= BIT STRING (SGP.22 2.4.x)
EVENT_BITS = ("install", "enable", "disable", "delete")  # NotificationEvent ::= BIT STRING


def bit_string(names: list[str], alphabet: tuple[str, ...]) -> tuple[bytes, int]:
    """A named-bit BIT STRING as asn1tools wants it: (bytes, number of bits), trailing zero bits trimmed."""
    value = 0
    length = 0
    for name in names:
        if name not in alphabet:
            raise ValueError(f"{name!r} is not one of {', '.join(alphabet)}")
        index = alphabet.index(name)
        value |= 0x80 >> index
        length = max(length, index + 1)
    return (bytes([value]) if length else b"", length)


def bit_names(bits: tuple[bytes, int], alphabet: tuple[str, ...]) -> list[str]:
    data, length = bits
    return [name for i, name in enumerate(alphabet) if i < length and data[i // 8] & (0x80 >> (i % 8))]


def profile_pprs(metadata: dict[str, Any]) -> list[str]:
    """The Profile's PPRs: the metadata's own plus those its policy document asks for."""
    policy = metadata.get("policy") or {}
    return sorted(set(metadata.get("profilePolicyRules", [])) | set(policy.get("profilePolicyRules", [])))


def store_metadata_value(iccid: str, metadata: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = {
        "iccid": encode_iccid(iccid),
        "serviceProviderName": metadata.get("serviceProviderName", ""),
        "profileName": metadata.get("profileName", ""),
    }
    if "iconType" in metadata and "icon" in metadata:
        value["iconType"] = ICON_TYPES[metadata["iconType"]]
        value["icon"] = b64.b64decode(metadata["icon"])
    if "profileClass" in metadata:
        value["profileClass"] = PROFILE_CLASSES[metadata["profileClass"]]
    policy = parse_policy(metadata["policy"]) if metadata.get("policy") else None
    pprs = profile_pprs(metadata)
    if pprs:
        value["profilePolicyRules"] = bit_string(pprs, PPR_BITS)
    if metadata.get("notificationConfigurationInfo"):
        value["notificationConfigurationInfo"] = [
            {"profileManagementOperation": bit_string(n["events"], EVENT_BITS), "notificationAddress": n["address"]}
            for n in metadata["notificationConfigurationInfo"]
        ]
    if policy is not None:
        value["serviceSpecificDataStoredInEuicc"] = [policy_extension(policy)]
    return value


def store_metadata_request(iccid: str, metadata: dict[str, Any]) -> bytes:
    return asn1.rsp().encode("StoreMetadataRequest", store_metadata_value(iccid, metadata))


def forbidden_pprs(euicc_info2: dict[str, Any], metadata: dict[str, Any]) -> list[str]:
    """The profile's PPRs that the eUICC forbids (EUICCInfo2.forbiddenProfilePolicyRules)."""
    forbidden = euicc_info2.get("forbiddenProfilePolicyRules")
    if not forbidden:
        return []
    refused = set(bit_names(forbidden, PPR_BITS))
    return [p for p in profile_pprs(metadata) if p in refused]
