"""The device's view of a Profile's travel policy: read back through ES10c GetProfilesInfo
(SGP.22 section 5.7.15, ProfileInfo.serviceSpecificDataStoredInEuicc, see
smdp.profiles.policy_codec) and from the USIM files the modem reads (EF.IMSI, EF.AD, EF.OPLMNwACT,
EF.FPLMN, 3GPP TS 31.102); and network choice in a visited country as 3GPP TS 23.122 section
4.4.3.1.1 orders it (HPLMN, then the operator controlled list in priority order, then any other
network), never a forbidden one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smdp.codec import asn1
from smdp.codec.bits import bit_names
from smdp.lpa.es10 import Es10Error, EuiccChannel
from smdp.profiles.inspect import file_content
from smdp.profiles.policy import Network, Policy
from smdp.profiles.policy_codec import policy_from_extension
from smdp.profiles.saip import decode_imsi, decode_profile_package, encode_iccid
from smdp.profiles.usim_files import PlmnWithAct, decode_fplmn, decode_oplmnwact

__all__ = ["NetworkChoice", "ProfilePolicy", "UsimSteering", "choose_network", "read_policy", "usim_steering"]

_PPR_BITS = ("pprUpdateControl", "ppr1", "ppr2")
# GetProfilesInfo tagList: ICCID, profilePolicyRules, serviceSpecificDataStoredInEuicc.
_TAGS = bytes.fromhex("5A99BF22")


@dataclass(frozen=True)
class UsimSteering:
    """What the modem reads from the Profile's USIM."""

    home: Network | None
    oplmnwact: list[PlmnWithAct]
    fplmn: list[Network]


@dataclass(frozen=True)
class ProfilePolicy:
    iccid: str
    policy: Policy | None  # from the metadata; None when the Profile carries none (or an unknown one)
    files: UsimSteering

    def disagreements(self) -> list[str]:
        """Where the metadata policy and the USIM files differ (empty when they agree)."""
        if self.policy is None:
            return []
        problems = []
        want = [(p.network.mccmnc, tuple(sorted(p.access))) for p in self.policy.preferred_networks]
        have = [(e.mccmnc, tuple(sorted(e.access_technologies))) for e in self.files.oplmnwact]
        if want != have:
            problems.append(f"EF.OPLMNwACT {have} differs from the policy's preferred networks {want}")
        if [n.mccmnc for n in self.policy.forbidden_networks] != [n.mccmnc for n in self.files.fplmn]:
            problems.append(f"EF.FPLMN {[n.plmn for n in self.files.fplmn]} differs from the policy's forbidden networks "
                            f"{[n.plmn for n in self.policy.forbidden_networks]}")  # fmt: skip
        return problems


def usim_steering(elements: list[bytes]) -> UsimSteering:
    """Steering data from an installed Profile's elements (as the modem would read the files)."""
    package = decode_profile_package(b"".join(elements))
    home = None
    fplmn: list[Network] = []
    oplmnwact: list[PlmnWithAct] = []
    for element in package.named("usim"):
        imsi_content = file_content(element.value.get("ef-imsi", []))
        ad = file_content(element.value.get("ef-ad", []))
        if imsi_content:
            imsi = decode_imsi(imsi_content)
            # EF.AD byte 4 (TS 31.102 section 4.2.18): length of the MNC in the IMSI, 2 or 3.
            mnc_length = ad[3] & 0x0F if len(ad) >= 4 and ad[3] & 0x0F in (2, 3) else 2
            home = Network(imsi[:3], imsi[3 : 3 + mnc_length])
        fplmn = [Network(*p) for p in decode_fplmn(file_content(element.value.get("ef-fplmn", [])))]
    for element in package.named("opt-usim"):
        oplmnwact = decode_oplmnwact(file_content(element.value.get("ef-oplmnwact", [])))
    return UsimSteering(home, oplmnwact, fplmn)


def read_policy(euicc: EuiccChannel, iccid: str, elements: list[bytes]) -> ProfilePolicy:
    """The policy the eUICC returns with the Profile's information, and the steering files in
    ``elements`` (the installed Profile Elements: what the modem reads through the USIM)."""
    request = asn1.rsp().encode("ProfileInfoListRequest", {"searchCriteria": ("iccid", encode_iccid(iccid)), "tagList": _TAGS})
    response = euicc.process(request)
    try:
        kind, infos = asn1.decode_exact(asn1.rsp(), "ProfileInfoListResponse", response)
    except asn1.Asn1Error as exc:
        raise Es10Error(f"eUICC answered GetProfilesInfo with no valid ProfileInfoListResponse: {exc}") from None
    if kind != "profileInfoListOk" or not infos:
        raise Es10Error(f"no Profile with ICCID {iccid} on this eUICC")
    info: dict[str, Any] = infos[0]
    pprs = tuple(n for n in bit_names(info.get("profilePolicyRules", (b"", 0)), _PPR_BITS) if n != "pprUpdateControl")
    policy = policy_from_extension(info.get("serviceSpecificDataStoredInEuicc"), pprs)
    return ProfilePolicy(iccid, policy, usim_steering(elements))


@dataclass(frozen=True)
class NetworkChoice:
    country: str
    chosen: Network | None
    reason: str
    verdicts: dict[str, str] = field(default_factory=dict)  # "426-01" -> why it was (not) taken
    data_roaming: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"country": self.country, "chosen": self.chosen.plmn if self.chosen else None, "reason": self.reason,
                "networks": self.verdicts, "dataRoaming": self.data_roaming}  # fmt: skip


def choose_network(profile: ProfilePolicy, country: str, available: list[Network]) -> NetworkChoice:
    """The network the device registers on among ``available`` in ``country`` (automatic mode).

    The USIM files decide, as they would for a device that ignores our metadata: the home
    network first, then EF.OPLMNwACT in priority order, then any other network; a network in
    EF.FPLMN (or forbidden by the policy) is never chosen. The policy adds whether data may be
    used there (dataRoaming)."""
    files = profile.files
    forbidden = {n.mccmnc for n in files.fplmn}
    country_rules = profile.policy.country(country) if profile.policy else None
    if country_rules is not None:
        forbidden |= {n.mccmnc for n in country_rules.forbidden}
    ranks = {e.mccmnc: rank for rank, e in enumerate(files.oplmnwact, start=1)}
    verdicts: dict[str, str] = {}
    for network in available:
        if network.mccmnc in forbidden:
            verdicts[network.plmn] = "forbidden (EF.FPLMN)" if any(n == network for n in files.fplmn) else "forbidden (policy)"
        elif files.home is not None and network == files.home:
            verdicts[network.plmn] = "home network"
        elif network.mccmnc in ranks:
            verdicts[network.plmn] = f"preferred #{ranks[network.mccmnc]} in EF.OPLMNwACT"
        else:
            verdicts[network.plmn] = "not listed"
    allowed = [n for n in available if n.mccmnc not in forbidden]
    data = country_rules.data_roaming if country_rules is not None else True
    if files.home is not None and files.home in allowed:
        return NetworkChoice(country, files.home, "home network available", verdicts, True)
    preferred = sorted((n for n in allowed if n.mccmnc in ranks), key=lambda n: ranks[n.mccmnc])
    if preferred:
        chosen = preferred[0]
        return NetworkChoice(country, chosen, f"highest-priority available network in EF.OPLMNwACT (#{ranks[chosen.mccmnc]})",
                             verdicts, data)  # fmt: skip
    if allowed:
        return NetworkChoice(country, allowed[0], "no preferred network available; first other network not forbidden",
                             verdicts, data)  # fmt: skip
    return NetworkChoice(country, None, "every available network is forbidden: no service (emergency calls only)",
                         verdicts, data)  # fmt: skip
