"""ES10b.GetEUICCInfo (SGP.22 section 5.7.8): EUICCInfo1 ('BF20') and EUICCInfo2 ('BF22').

EUICCInfo1 tells an SM-DP+ which SGP.22 version the eUICC implements and which CIs it can verify
(euiccCiPKIdListForVerification) and sign under (euiccCiPKIdListForSigning); EUICCInfo2 adds what a
real eUICC reports about itself. The values here are those of a plausible consumer eUICC of the
SGP.22 v2.2 generation; only the CI lists and forbiddenProfilePolicyRules vary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smdp.codec import asn1
from smdp.codec.bits import bit_string
from smdp.codec.tlv import tlv

__all__ = ["PPR_BITS", "EuiccInfo", "euicc_info1", "euicc_info2", "ext_card_resource"]

#: PprIds ::= BIT STRING (SGP.22 section 2.4.x / Annex H)
PPR_BITS = ("pprUpdateControl", "ppr1", "ppr2")

_UICC_CAPABILITY_BITS = (
    "contactlessSupport", "usimSupport", "isimSupport", "csimSupport", "akaMilenage", "akaCave",
    "akaTuak128", "akaTuak256", "usimTestAlgorithm", "rfu2", "gbaAuthenUsim", "gbaAuthenISim",
    "mbmsAuthenUsim", "eapClient", "javacard", "multos", "multipleUsimSupport",
    "multipleIsimSupport", "multipleCsimSupport", "berTlvFileSupport", "dfLinkSupport", "catTp",
    "getIdentity", "profile-a-x25519", "profile-b-p256", "suciCalculatorApi",
)  # fmt: skip
_RSP_CAPABILITY_BITS = ("additionalProfile", "crlSupport", "rpmSupport", "testProfileSupport")

# What this eUICC claims: the usual USIM/ISIM feature set of a v2.2 consumer eUICC. No CRL support
# (it does not load CRLs) and no CDMA: claiming either would invite tests it cannot pass.
_UICC_CAPABILITY = (
    "usimSupport", "isimSupport", "akaMilenage", "akaTuak128", "akaTuak256", "usimTestAlgorithm",
    "gbaAuthenUsim", "gbaAuthenISim", "eapClient", "javacard", "multipleUsimSupport",
    "multipleIsimSupport", "berTlvFileSupport", "dfLinkSupport", "catTp", "getIdentity",
    "profile-a-x25519", "profile-b-p256", "suciCalculatorApi",
)  # fmt: skip
_RSP_CAPABILITY = ("additionalProfile", "testProfileSupport")

#: Free non-volatile memory this eUICC advertises before any Profile is installed.
TOTAL_NVM = 1_500_000
FREE_RAM = 0x8000


@dataclass(frozen=True)
class EuiccInfo:
    """The variable parts of the eUICC's self-description."""

    ci_pkids_verification: list[bytes]
    ci_pkids_signing: list[bytes]
    svn: bytes = bytes([2, 2, 2])  # SGP.22 v2.2.2, what lpac and current devices speak
    profile_version: bytes = bytes([2, 3, 1])  # SAIP v2.3.1
    firmware_version: bytes = bytes([1, 0, 0])
    ts102241_version: bytes = bytes([9, 2, 0])
    globalplatform_version: bytes = bytes([2, 3, 1])
    pp_version: bytes = bytes([1, 0, 0])  # SGP.25 Protection Profile v1.0
    sas_accreditation_number: str = "SMDP-VIRTUAL-EUICC"
    forbidden_pprs: list[str] = field(default_factory=list)


def euicc_info1(info: EuiccInfo) -> bytes:
    """EUICCInfo1 DER ('BF20')."""
    return asn1.rsp().encode(
        "EUICCInfo1",
        {
            "svn": info.svn,
            "euiccCiPKIdListForVerification": list(info.ci_pkids_verification),
            "euiccCiPKIdListForSigning": list(info.ci_pkids_signing),
        },
    )


def ext_card_resource(installed_applications: int, used_nvm: int) -> bytes:
    """ETSI TS 102 226 section 8.2.1.3.2 extended card resources: '81' applications, '82' free
    non-volatile memory, '83' free volatile memory."""
    free = max(TOTAL_NVM - used_nvm, 0)
    return (
        tlv(0x81, bytes([min(installed_applications, 0xFF)]))
        + tlv(0x82, free.to_bytes(4, "big"))
        + tlv(0x83, FREE_RAM.to_bytes(4, "big"))
    )


def euicc_info2(info: EuiccInfo, *, installed_applications: int, used_nvm: int) -> bytes:
    """EUICCInfo2 DER ('BF22'); the memory figures reflect the Profiles installed."""
    value = {
        "profileVersion": info.profile_version,
        "svn": info.svn,
        "euiccFirmwareVer": info.firmware_version,
        "extCardResource": ext_card_resource(installed_applications, used_nvm),
        "uiccCapability": bit_string(_UICC_CAPABILITY, _UICC_CAPABILITY_BITS),
        "ts102241Version": info.ts102241_version,
        "globalplatformVersion": info.globalplatform_version,
        "rspCapability": bit_string(_RSP_CAPABILITY, _RSP_CAPABILITY_BITS),
        "euiccCiPKIdListForVerification": list(info.ci_pkids_verification),
        "euiccCiPKIdListForSigning": list(info.ci_pkids_signing),
        "euiccCategory": 0,  # other
        "ppVersion": info.pp_version,
        "sasAcreditationNumber": info.sas_accreditation_number,
    }
    if info.forbidden_pprs:
        value["forbiddenProfilePolicyRules"] = bit_string(info.forbidden_pprs, PPR_BITS)
    return asn1.rsp().encode("EUICCInfo2", value)
