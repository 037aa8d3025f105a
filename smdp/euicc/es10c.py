"""ES10c local profile management on the eUICC (SGP.22 5.7.15 GetProfilesInfo, 5.7.16 EnableProfile,
5.7.17 DisableProfile, 5.7.18 DeleteProfile, 5.7.19 eUICCMemoryReset, 5.7.20 GetEID, 5.7.21
SetNickname) over the persistent :class:`~smdp.euicc.state.EuiccState`.

Each function takes the decoded request and returns the response DER plus the Profile management
events it caused, as (profile, event) pairs, for which the caller creates Notifications. Profile
Policy Rules are honoured: ppr1 forbids disabling (and so enabling another Profile in its place),
ppr2 forbids deleting (SGP.22 2.9.2).
"""

from __future__ import annotations

from typing import Any

from smdp.codec import asn1
from smdp.codec.bits import bit_names
from smdp.codec.tlv import TlvError
from smdp.euicc.der import iter_tags
from smdp.euicc.errors import EuiccCommandError
from smdp.euicc.info import PPR_BITS
from smdp.euicc.state import EuiccState, InstalledProfile
from smdp.profiles.saip import encode_iccid

__all__ = [
    "Events",
    "delete_profile",
    "disable_profile",
    "enable_profile",
    "get_eid",
    "get_profiles_info",
    "memory_reset",
    "set_nickname",
]

Events = list[tuple[InstalledProfile, str]]

# ProfileInfo fields and their tags, for the tagList of GetProfilesInfo (SGP.22 5.7.15).
_FIELD_TAGS = {
    "iccid": 0x5A,
    "isdpAid": 0x4F,
    "profileState": 0x9F70,
    "profileNickname": 0x90,
    "serviceProviderName": 0x91,
    "profileName": 0x92,
    "iconType": 0x93,
    "icon": 0x94,
    "profileClass": 0x95,
    "notificationConfigurationInfo": 0xB6,
    "profileOwner": 0xB7,
    "profilePolicyRules": 0x99,
    "serviceSpecificDataStoredInEuicc": 0xBF22,
}
_PROFILE_CLASS_OPERATIONAL = 2
_PROFILE_CLASS_TEST = 0


def metadata_of(profile: InstalledProfile) -> dict[str, Any]:
    """The Profile's StoreMetadataRequest, decoded."""
    return asn1.rsp().decode("StoreMetadataRequest", profile.metadata)


def _pprs(profile: InstalledProfile) -> set[str]:
    return set(bit_names(metadata_of(profile).get("profilePolicyRules", (b"", 0)), PPR_BITS))


def profile_info(profile: InstalledProfile) -> dict[str, Any]:
    metadata = metadata_of(profile)
    info: dict[str, Any] = {
        "iccid": encode_iccid(profile.iccid),
        "isdpAid": profile.isdp_aid,
        "profileState": 1 if profile.enabled else 0,
    }
    if profile.nickname is not None:
        info["profileNickname"] = profile.nickname
    for name in ("serviceProviderName", "profileName", "iconType", "icon", "profileClass",
                 "notificationConfigurationInfo", "profileOwner", "profilePolicyRules",
                 "serviceSpecificDataStoredInEuicc"):  # fmt: skip
        if name in metadata:
            info[name] = metadata[name]
    return info


def get_profiles_info(request: dict[str, Any], state: EuiccState) -> bytes:
    """ProfileInfoListResponse ('BF2D'), filtered by searchCriteria, reduced to tagList if given."""
    profiles = list(state.profiles)
    criteria = request.get("searchCriteria")
    if criteria is not None:
        kind, wanted = criteria
        if kind == "isdpAid":
            profiles = [p for p in profiles if p.isdp_aid == wanted]
        elif kind == "iccid":
            profiles = [p for p in profiles if encode_iccid(p.iccid) == wanted]
        elif kind == "profileClass":
            profiles = [p for p in profiles if metadata_of(p).get("profileClass", 2) == wanted]
        else:
            return asn1.rsp().encode("ProfileInfoListResponse", ("profileInfoListError", 1))
    tags: set[int] | None = None
    if "tagList" in request:
        try:
            tags = set(iter_tags(request["tagList"]))
        except (TlvError, ValueError):
            return asn1.rsp().encode("ProfileInfoListResponse", ("profileInfoListError", 1))
    infos = []
    for profile in profiles:
        info = profile_info(profile)
        if tags is not None:
            info = {k: v for k, v in info.items() if _FIELD_TAGS.get(k) in tags}
        infos.append(info)
    return asn1.rsp().encode("ProfileInfoListResponse", ("profileInfoListOk", infos))


def find_profile(state: EuiccState, identifier: tuple[str, bytes]) -> InstalledProfile | None:
    """The Profile named by an ISD-P AID ('4F') or an ICCID ('5A') choice."""
    kind, value = identifier
    for profile in state.profiles:
        if kind == "isdpAid" and profile.isdp_aid == value:
            return profile
        if kind == "iccid" and encode_iccid(profile.iccid) == value:
            return profile
    return None


def enable_profile(request: dict[str, Any], state: EuiccState) -> tuple[bytes, Events]:
    """EnableProfileResponse ('BF31'); the enabled Profile, if any, is disabled first."""
    profile = find_profile(state, request["profileIdentifier"])
    result = 0
    events: Events = []
    if profile is None:
        result = 1  # iccidOrAidNotFound
    elif profile.enabled:
        result = 2  # profileNotInDisabledState
    else:
        current = next((p for p in state.profiles if p.enabled), None)
        if current is not None and "ppr1" in _pprs(current):
            result = 3  # disallowedByPolicy: the enabled Profile may not be disabled
        else:
            if current is not None:
                current.enabled = False
                events.append((current, "disable"))
            profile.enabled = True
            events.append((profile, "enable"))
    return asn1.rsp().encode("EnableProfileResponse", {"enableResult": result}), events


def disable_profile(request: dict[str, Any], state: EuiccState) -> tuple[bytes, Events]:
    """DisableProfileResponse ('BF32')."""
    profile = find_profile(state, request["profileIdentifier"])
    result = 0
    events: Events = []
    if profile is None:
        result = 1  # iccidOrAidNotFound
    elif not profile.enabled:
        result = 2  # profileNotInEnabledState
    elif "ppr1" in _pprs(profile):
        result = 3  # disallowedByPolicy
    else:
        profile.enabled = False
        events.append((profile, "disable"))
    return asn1.rsp().encode("DisableProfileResponse", {"disableResult": result}), events


def delete_profile(request: tuple[str, bytes], state: EuiccState) -> tuple[bytes, Events]:
    """DeleteProfileResponse ('BF33'): only a disabled Profile can be deleted."""
    profile = find_profile(state, request)
    result = 0
    events: Events = []
    if profile is None:
        result = 1  # iccidOrAidNotFound
    elif profile.enabled:
        result = 2  # profileNotInDisabledState
    elif "ppr2" in _pprs(profile):
        result = 3  # disallowedByPolicy
    else:
        state.profiles.remove(profile)
        events.append((profile, "delete"))
    return asn1.rsp().encode("DeleteProfileResponse", {"deleteResult": result}), events


def set_nickname(request: dict[str, Any], state: EuiccState) -> bytes:
    """SetNicknameResponse ('BF29'); an empty nickname clears it.

    profileNickname is UTF8String (SIZE(0..64)) (SGP.22 5.7.21): a longer one is not a valid
    command, and SetNicknameResponse has no code for it, so it is refused like any malformed data."""
    if len(request["profileNickname"]) > 64:
        raise EuiccCommandError(f"SetNickname: profileNickname longer than 64 characters ({len(request['profileNickname'])})")
    profile = find_profile(state, ("iccid", request["iccid"]))
    if profile is None:
        return asn1.rsp().encode("SetNicknameResponse", {"setNicknameResult": 1})  # iccidNotFound
    profile.nickname = request["profileNickname"] or None
    return asn1.rsp().encode("SetNicknameResponse", {"setNicknameResult": 0})


def get_eid(request: dict[str, Any], state: EuiccState) -> bytes:
    """GetEuiccDataResponse ('BF3E') with the EID; the only data object defined is '5A'."""
    if request["tagList"] != b"\x5a":
        raise EuiccCommandError("GetEuiccData: only tagList '5A' (EID) is supported")
    return asn1.rsp().encode("GetEuiccDataResponse", {"eidValue": bytes.fromhex(state.eid)})


def memory_reset(request: dict[str, Any], state: EuiccState) -> bytes:
    """EuiccMemoryResetResponse ('BF34'). Deleted Profiles produce no Notifications, as a reset is
    typically done when the device changes hands and nobody is left to tell (SGP.22 5.7.19)."""
    options = set(bit_names(request["resetOptions"], ("operational", "test", "address")))
    doomed = [
        p
        for p in state.profiles
        if ("operational" in options and metadata_of(p).get("profileClass", 2) == _PROFILE_CLASS_OPERATIONAL)
        or ("test" in options and metadata_of(p).get("profileClass", 2) == _PROFILE_CLASS_TEST)
    ]
    changed = bool(doomed)
    for profile in doomed:
        state.profiles.remove(profile)
    if "address" in options and state.default_dp_address is not None:
        state.default_dp_address = None
        changed = True
    return asn1.rsp().encode("EuiccMemoryResetResponse", {"resetResult": 0 if changed else 1})
