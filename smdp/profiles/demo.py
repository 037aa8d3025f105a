"""A small demo USIM profile package, built by smdp through the SAIP PEDefinitions codec
(TCA eUICC Profile Package: Interoperable Format, file system templates of its Annex A).

The package is: ProfileHeader, PE-MF (MF, EF.ICCID, EF.DIR, EF.ARR), PE-PUKCodes,
PE-PINCodes (MF context), PE-USIM (ADF.USIM, EF.IMSI, EF.ARR, EF.UST, EF.SPN, EF.EST,
EF.ACC, EF.AD, EF.ECC), PE-AKAParameter (Milenage with the given Ki/OPc) and PE-End.
Files not listed keep the template's defaults. Access rules use the ETSI TS 102 221
expanded format, and the EF.ARR record numbers are the ones the MF and USIM templates
reference by default, so no file needs its security attributes overridden.

For tests and demonstrations only: the PIN, PUK and ADM values below are public.
"""

from __future__ import annotations

from smdp.codec.asn1 import saip
from smdp.profiles.saip import encode_header_iccid, encode_iccid, encode_imsi

__all__ = ["DEMO_ADM1", "DEMO_PIN1", "DEMO_PUK1", "USIM_AID", "build_demo_profile"]

# SAIP template OIDs (Annex A): files at MF, and the mandatory files of ADF.USIM.
TEMPLATE_MF = "2.23.143.1.2.1"
TEMPLATE_USIM = "2.23.143.1.2.4"

# 3GPP USIM AID: RID A000000087, application code 1002, then country/provider codes.
USIM_AID = bytes.fromhex("A0000000871002FFFFFFFF8907090000")
USIM_TEMPORARY_FID = bytes.fromhex("7FD0")  # names the ADF inside this package only

DEMO_PIN1 = b"1234" + b"\xff" * 4
DEMO_PUK1 = b"12345678"
DEMO_ADM1 = b"88888888"

_PIN_APPL1, _ADM1, _PUK_APPL1 = 0x01, 0x0A, 0x01

# Security conditions (TS 102 221 section 9.2.4): always, or the user verified a key.
_ALWAYS = bytes.fromhex("9000")


def _verified(key_reference: int) -> bytes:
    return bytes.fromhex("A4068301") + bytes([key_reference]) + bytes.fromhex("950108")


def _rule(access_mode: int, condition: bytes) -> bytes:
    return bytes([0x80, 0x01, access_mode]) + condition


# Access mode bits for EFs: READ 01, UPDATE 02, DEACTIVATE 08, ACTIVATE 10; for DFs 7F
# covers every DF operation.
_READ_ALWAYS_ADMIN_ADM1 = _rule(0x01, _ALWAYS) + _rule(0x1A, _verified(_ADM1))
_READ_ALWAYS_NO_UPDATE = _rule(0x01, _ALWAYS) + _rule(0x18, _verified(_ADM1))
_READ_PIN1_ADMIN_ADM1 = _rule(0x01, _verified(_PIN_APPL1)) + _rule(0x1A, _verified(_ADM1))
_READ_UPDATE_PIN1 = _rule(0x03, _verified(_PIN_APPL1)) + _rule(0x18, _verified(_ADM1))
_DF_ADM1 = _rule(0x7F, _verified(_ADM1))

_ARR_RECORD_LENGTH = 24

# MF template defaults: EF.PL uses record 1, EF.DIR/EF.ARR/EF.UMPC 10, EF.ICCID 11,
# the MF (and every ADF) 14, all of EF.ARR '2F06'.
_MF_ARR = {
    1: _READ_ALWAYS_ADMIN_ADM1,
    10: _READ_ALWAYS_ADMIN_ADM1,
    11: _READ_ALWAYS_NO_UPDATE,
    14: _DF_ADM1,
}
# USIM template defaults, in the ADF's EF.ARR '6F06': 2 (EF.IMSI, EF.UST, EF.ACC, ...),
# 5 (location and key files, SMS), 8 (EF.FDN, EF.EST), 10 (EF.ARR, EF.SPN, EF.AD, EF.ECC).
_USIM_ARR = {
    2: _READ_PIN1_ADMIN_ADM1,
    5: _READ_UPDATE_PIN1,
    8: _READ_PIN1_ADMIN_ADM1,
    10: _READ_ALWAYS_ADMIN_ADM1,
}

# EF.UST (TS 31.102 section 4.2.8), 14 bytes as in the template: service 19 (service
# provider name, EF.SPN) and service 33 (packet switched domain).
_UST_SERVICES = (19, 33)
_UST_LENGTH = 14


def _records(rules: dict[int, bytes], length: int) -> bytes:
    count = max(rules)
    return b"".join(rules.get(n, b"").ljust(length, b"\xff") for n in range(1, count + 1))


def _linear_fixed(record_length: int, record_count: int) -> dict[str, bytes]:
    """FCP override for a linear fixed EF: descriptor '42 21' + record length, and size."""
    size = record_length * record_count
    return {
        "fileDescriptor": bytes([0x42, 0x21]) + record_length.to_bytes(2, "big"),
        "efFileSize": size.to_bytes((size.bit_length() + 7) // 8, "big"),
    }


def _service_table(services: tuple[int, ...], length: int) -> bytes:
    table = bytearray(length)
    for service in services:
        table[(service - 1) // 8] |= 1 << ((service - 1) % 8)
    return bytes(table)


def _pe_header(identification: int) -> dict[str, object]:
    return {"mandated": None, "identification": identification}


def build_demo_profile(
    iccid: str, imsi: str, ki: bytes, opc: bytes, *, mnc_length: int = 2
) -> bytes:
    """Build a valid SAIP v2.3 USIM profile package for ``iccid``/``imsi`` with Milenage Ki/OPc.

    ``mnc_length`` (2 or 3) goes to EF.AD so that the device splits MCC/MNC correctly.
    Raises ValueError for malformed identifiers or key lengths other than 16 bytes.
    """
    if len(ki) != 16 or len(opc) != 16:
        raise ValueError(f"Milenage Ki and OPc must be 16 bytes, got {len(ki)} and {len(opc)}")
    if mnc_length not in (2, 3):
        raise ValueError(f"MNC length must be 2 or 3, got {mnc_length}")
    imsi_content = encode_imsi(imsi)
    ef_dir_record = _usim_dir_record()
    elements: list[tuple[str, dict[str, object]]] = [
        ("header", {
            "major-version": 2,
            "minor-version": 3,
            "profileType": "smdp demo USIM profile",
            "iccid": encode_header_iccid(iccid),
            "eUICC-Mandatory-services": {"usim": None, "milenage": None},
            "eUICC-Mandatory-GFSTEList": [TEMPLATE_MF, TEMPLATE_USIM],
        }),
        ("mf", {
            "mf-header": _pe_header(1),
            "templateID": TEMPLATE_MF,
            # Key references whose PIN status the MF reports: PIN1 (global) and ADM1.
            "mf": [("fileDescriptor", {"pinStatusTemplateDO": bytes([_PIN_APPL1, _ADM1])})],
            "ef-iccid": [("fillFileContent", encode_iccid(iccid))],
            "ef-dir": [
                ("fileDescriptor", _linear_fixed(len(ef_dir_record), 1)),
                ("fillFileContent", ef_dir_record),
            ],
            "ef-arr": [
                ("fileDescriptor", _linear_fixed(_ARR_RECORD_LENGTH, max(_MF_ARR))),
                ("fillFileContent", _records(_MF_ARR, _ARR_RECORD_LENGTH)),
            ],
        }),
        # PUKs come before the PINs that name them as unblocking references.
        ("pukCodes", {
            "puk-Header": _pe_header(2),
            "pukCodes": [{"keyReference": _PUK_APPL1, "pukValue": DEMO_PUK1}],
        }),
        ("pinCodes", {
            "pin-Header": _pe_header(3),
            "pinCodes": ("pinconfig", [
                # Attribute values as in the GSMA TS.48 generic test profile.
                {"keyReference": _PIN_APPL1, "pinValue": DEMO_PIN1,
                 "unblockingPINReference": _PUK_APPL1, "pinAttributes": 6},
                {"keyReference": _ADM1, "pinValue": DEMO_ADM1, "pinAttributes": 3,
                 "maxNumOfAttemps-retryNumLeft": 0xAA},
            ]),
        }),
        ("usim", {
            "usim-header": _pe_header(4),
            "templateID": TEMPLATE_USIM,
            "adf-usim": [("fileDescriptor", {
                "fileID": USIM_TEMPORARY_FID,
                "dfName": USIM_AID,
                "pinStatusTemplateDO": bytes([_PIN_APPL1, _ADM1]),
            })],
            "ef-imsi": [("fillFileContent", imsi_content)],
            "ef-arr": [
                ("fileDescriptor", _linear_fixed(_ARR_RECORD_LENGTH, max(_USIM_ARR))),
                ("fillFileContent", _records(_USIM_ARR, _ARR_RECORD_LENGTH)),
            ],
            "ef-ust": [("fillFileContent", _service_table(_UST_SERVICES, _UST_LENGTH))],
            # Display condition 00, then the name in the GSM default alphabet, 'FF'-padded.
            "ef-spn": [("fillFileContent", (b"\x00" + b"smdp demo").ljust(17, b"\xff"))],
            "ef-est": [("fillFileContent", b"\x00")],
            # Access control class (TS 22.011): the IMSI's last digit picks one of 0 to 9.
            "ef-acc": [("fillFileContent", (1 << int(imsi[-1])).to_bytes(2, "big"))],
            "ef-ad": [("fillFileContent", bytes([0x00, 0x00, 0x00, mnc_length]))],
            # One emergency number, 112, with no category bits.
            "ef-ecc": [("fillFileContent", bytes.fromhex("11F2FF00"))],
        }),
        ("akaParameter", {
            "aka-header": _pe_header(5),
            "algoConfiguration": ("algoParameter", {
                "algorithmID": 1,  # milenage; constants r1..r5, c1..c5 left at their defaults
                "algorithmOptions": b"\x00",
                "key": bytes(ki),
                "opc": bytes(opc),
            }),
        }),
        ("end", {"end-header": _pe_header(6)}),
    ]
    spec = saip()
    return b"".join(
        spec.encode("ProfileElement", element, check_constraints=True) for element in elements
    )


def _usim_dir_record() -> bytes:
    """EF.DIR record (TS 102 221 section 13.1): application template with AID and label."""
    label = b"USIM"
    template = b"\x4f" + bytes([len(USIM_AID)]) + USIM_AID + b"\x50" + bytes([len(label)]) + label
    return b"\x61" + bytes([len(template)]) + template
