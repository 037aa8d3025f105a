"""Profile metadata (SGP.22 section 5.5.3 StoreMetadataRequest) from the checked model,
smdp.profiles.metadata.ProfileMetadata, of the JSON form kept in the database.

JSON form (checked by ProfileMetadata.from_json)::

    {"serviceProviderName": "...", "profileName": "...", "profileClass": "test|provisioning|operational",
     "iconType": "jpg|png", "icon": "<base64>", "profilePolicyRules": ["ppr1", "ppr2"],
     "notificationConfigurationInfo": [{"events": ["install", "enable", "disable", "delete"], "address": "host"}],
     "policy": {<travel policy document, see smdp.profiles.policy>}}

The policy goes into serviceSpecificDataStoredInEuicc (SGP.22 v2.4+, after the extension marker, so older
LPAs and eUICCs skip it) under our OID, and its profilePolicyRules join the standard PPR bits.
"""

from __future__ import annotations

from typing import Any

from smdp.codec import asn1
from smdp.codec.bits import bit_names, bit_string
from smdp.profiles import metadata as model
from smdp.profiles.metadata import EVENT_BITS, PPR_BITS, ProfileMetadata
from smdp.profiles.policy_codec import policy_extension
from smdp.profiles.saip import encode_iccid

__all__ = ["EVENT_BITS", "ICON_TYPES", "PPR_BITS", "PROFILE_CLASSES", "forbidden_pprs", "profile_pprs",
           "store_metadata_request", "store_metadata_value"]  # fmt: skip

PROFILE_CLASSES = {name: number for number, name in enumerate(model.PROFILE_CLASSES)}
ICON_TYPES = {name: number for number, name in enumerate(model.ICON_TYPES)}


def _model(metadata: ProfileMetadata | dict[str, Any]) -> ProfileMetadata:
    """The checked model (MetadataError, naming the field, for a JSON document that is not valid)."""
    return ProfileMetadata.from_json(metadata)


def profile_pprs(metadata: ProfileMetadata | dict[str, Any]) -> list[str]:
    """The Profile's PPRs: the metadata's own plus those its policy document asks for."""
    return _model(metadata).pprs


def store_metadata_value(iccid: str, metadata: ProfileMetadata | dict[str, Any]) -> dict[str, Any]:
    meta = _model(metadata)
    value: dict[str, Any] = {
        "iccid": encode_iccid(iccid),
        "serviceProviderName": meta.service_provider_name,
        "profileName": meta.profile_name,
    }
    if meta.icon_type is not None and meta.icon is not None:
        value["iconType"] = ICON_TYPES[meta.icon_type]
        value["icon"] = meta.icon
    if meta.profile_class is not None:
        value["profileClass"] = PROFILE_CLASSES[meta.profile_class]
    pprs = meta.pprs
    if pprs:
        value["profilePolicyRules"] = bit_string(pprs, PPR_BITS)
    if meta.notifications:
        value["notificationConfigurationInfo"] = [
            {"profileManagementOperation": bit_string(n.events, EVENT_BITS), "notificationAddress": n.address}
            for n in meta.notifications
        ]
    if meta.policy is not None:
        value["serviceSpecificDataStoredInEuicc"] = [policy_extension(meta.policy)]
    return value


def store_metadata_request(iccid: str, metadata: ProfileMetadata | dict[str, Any]) -> bytes:
    """The DER StoreMetadataRequest (a JSON document is checked first: MetadataError naming the field)."""
    return asn1.rsp().encode("StoreMetadataRequest", store_metadata_value(iccid, metadata))


def forbidden_pprs(euicc_info2: dict[str, Any], metadata: ProfileMetadata | dict[str, Any]) -> list[str]:
    """The profile's PPRs that the eUICC forbids (EUICCInfo2.forbiddenProfilePolicyRules)."""
    forbidden = euicc_info2.get("forbiddenProfilePolicyRules")
    if not forbidden:
        return []
    refused = set(bit_names(forbidden, PPR_BITS))
    return [p for p in profile_pprs(metadata) if p in refused]
