"""SAIP unprotected profile packages: the TCA "eUICC Profile Package: Interoperable Format"
(v2.x/v3.x) as carried by SGP.22 (the UPP that the SM-DP+ segments, encrypts and binds).

A package is a plain concatenation of DER ``ProfileElement`` TLVs (PEDefinitions), the
ProfileHeader first and PE-End last. This module splits, decodes and checks packages and
holds the identifier codings shared by profile code: ICCID (ITU-T E.118 digits; EF.ICCID
per ETSI TS 102 221 section 13.2), IMSI (EF.IMSI per 3GPP TS 31.102 section 4.2.2) and
the Luhn check digit.

Two ICCID codings meet here and must not be confused: EF.ICCID and the SGP.22 ``Iccid``
('5A') are BCD with the nibbles of each byte swapped, whereas ProfileHeader.iccid is
BCD *without* the swap ("non-swapped ITU E.118 format", as the GSMA TS.48 test profiles
have it). Both are padded with 'F' to 10 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smdp.codec.asn1 import Asn1Error, decode_exact, saip
from smdp.codec.tlv import TlvError, iter_tlvs

__all__ = [
    "ProfileElement",
    "ProfilePackage",
    "SaipError",
    "check_iccid",
    "decode_header_iccid",
    "decode_iccid",
    "decode_imsi",
    "decode_profile_package",
    "encode_header_iccid",
    "encode_iccid",
    "encode_imsi",
    "luhn_check_digit",
    "split_profile_elements",
    "validate_profile_package",
]


class SaipError(ValueError):
    """A profile package that is malformed or inconsistent; the message says where."""


# --- identifiers ------------------------------------------------------------------


def _check_digits(value: str, what: str, min_len: int, max_len: int) -> None:
    if not isinstance(value, str) or not value.isdigit() or not value.isascii():
        raise ValueError(f"{what} must be a string of decimal digits, got {value!r}")
    if not min_len <= len(value) <= max_len:
        raise ValueError(f"{what} must have {min_len} to {max_len} digits, got {len(value)}")


def _swap_nibbles(data: bytes) -> str:
    return "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in data)


def _digits_from_padded(hex_digits: str, what: str) -> str:
    digits = hex_digits.rstrip("F")
    if not digits.isdigit():
        raise ValueError(f"{what} {hex_digits} is not BCD digits followed by 'F' padding")
    return digits


def luhn_check_digit(digits: str) -> str:
    """The Luhn (ISO/IEC 7812-1 annex B) check digit to append to ``digits``."""
    _check_digits(digits, "Luhn input", 1, 64)
    total = 0
    # Double every second digit counting from the right end of the payload.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def check_iccid(iccid: str) -> None:
    """Refuse (ValueError, naming the problem) an ICCID that is not a telecom ICCID a device would accept:
    19 or 20 digits, starting with 89 (ITU-T E.118 major industry identifier), ending with the Luhn check
    digit of the others. The codings below take any digits up to 20; this is what an operator-supplied
    ICCID (``profile import --iccid``) must also be, since a typo would otherwise reach the eUICC."""
    if not isinstance(iccid, str) or not iccid.isascii() or not iccid.isdigit() or not 19 <= len(iccid) <= 20:
        raise ValueError(f"ICCID must be 19 or 20 decimal digits (the last one the Luhn check digit), got {iccid!r}")
    if not iccid.startswith("89"):
        raise ValueError(f"ICCID {iccid} does not start with 89 (ITU-T E.118 telecom ICCIDs)")
    expected = luhn_check_digit(iccid[:-1])
    if iccid[-1] != expected:
        raise ValueError(f"ICCID {iccid} has check digit {iccid[-1]}, but the Luhn digit of {iccid[:-1]} is {expected}")


def encode_iccid(iccid: str) -> bytes:
    """ICCID as stored in EF.ICCID and SGP.22 ``Iccid``: 10 bytes, nibble-swapped, 'F'-padded."""
    _check_digits(iccid, "ICCID", 1, 20)
    padded = iccid.ljust(20, "F")
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, 20, 2)))


def decode_iccid(data: bytes) -> str:
    """Digits of an EF.ICCID / SGP.22 ``Iccid`` value (inverse of encode_iccid)."""
    if len(data) != 10:
        raise ValueError(f"ICCID must be 10 bytes, got {len(data)}")
    return _digits_from_padded(_swap_nibbles(data), "ICCID")


def encode_header_iccid(iccid: str) -> bytes:
    """ICCID as in ProfileHeader.iccid: 10 bytes of BCD in reading order, 'F'-padded."""
    _check_digits(iccid, "ICCID", 1, 20)
    return bytes.fromhex(iccid.ljust(20, "F"))


def decode_header_iccid(data: bytes) -> str:
    """Digits of a ProfileHeader.iccid value (inverse of encode_header_iccid)."""
    if len(data) != 10:
        raise ValueError(f"ProfileHeader iccid must be 10 bytes, got {len(data)}")
    return _digits_from_padded(data.hex().upper(), "ProfileHeader iccid")


def encode_imsi(imsi: str) -> bytes:
    """EF.IMSI content (3GPP TS 31.102 section 4.2.2), 9 bytes.

    Byte 1 is the number of bytes used; then the digits as BCD, low nibble first, the
    very first nibble being the parity/type indication ('1' = IMSI, plus '8' when the
    number of digits is odd); unused bytes are 'FF'.
    """
    _check_digits(imsi, "IMSI", 6, 15)
    nibbles = [0x9 if len(imsi) % 2 else 0x1] + [int(d) for d in imsi]
    if len(nibbles) % 2:
        nibbles.append(0xF)
    body = bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))
    return (bytes([len(body)]) + body).ljust(9, b"\xff")


def decode_imsi(data: bytes) -> str:
    """Digits of an EF.IMSI value (inverse of encode_imsi)."""
    if len(data) < 2 or not 1 <= data[0] <= len(data) - 1 or data[0] > 8:
        raise ValueError(f"EF.IMSI content {data.hex()} has an invalid length byte")
    nibbles = _swap_nibbles(data[1 : 1 + data[0]])
    if nibbles[0] not in "19":
        raise ValueError(f"EF.IMSI content {data.hex()} does not carry an IMSI (type nibble)")
    digits = nibbles[1:] if nibbles[0] == "9" else nibbles[1:].removesuffix("F")
    if not digits.isdigit():
        raise ValueError(f"EF.IMSI content {data.hex()} has non-BCD digits")
    return digits


# --- profile elements -----------------------------------------------------------------


@dataclass(frozen=True)
class ProfileElement:
    """One decoded PE: the CHOICE alternative ``name``, its asn1tools ``value``, its DER ``raw``."""

    name: str
    value: Any
    raw: bytes

    @property
    def identification(self) -> int | None:
        """The PEHeader identification number (None for the ProfileHeader, which has none)."""
        if self.name == "header" or not isinstance(self.value, dict):
            return None
        for key, member in self.value.items():
            if key.lower().endswith("header") and isinstance(member, dict):
                return member.get("identification")
        return None


@dataclass(frozen=True)
class ProfilePackage:
    """A decoded unprotected profile package, in package order."""

    elements: list[ProfileElement]

    def named(self, name: str) -> list[ProfileElement]:
        """All PEs of CHOICE alternative ``name`` (e.g. 'pinCodes'), in order."""
        return [element for element in self.elements if element.name == name]

    @property
    def header(self) -> dict[str, Any]:
        if not self.elements or self.elements[0].name != "header":
            raise SaipError("the first profile element is not the ProfileHeader")
        return self.elements[0].value

    @property
    def iccid(self) -> str:
        """ICCID digits from ProfileHeader.iccid (non-swapped BCD, 'F' padding removed)."""
        try:
            return decode_header_iccid(self.header["iccid"])
        except ValueError as exc:
            raise SaipError(f"ProfileHeader: {exc}") from None

    @property
    def profile_type(self) -> str | None:
        return self.header.get("profileType")

    @property
    def version(self) -> tuple[int, int]:
        """SAIP (major, minor) version the package declares."""
        return self.header["major-version"], self.header["minor-version"]

    @property
    def mandatory_services(self) -> frozenset[str]:
        """Names of the ServicesList entries present in the header."""
        return frozenset(self.header["eUICC-Mandatory-services"])

    @property
    def mandatory_templates(self) -> tuple[str, ...]:
        """Template OIDs listed in eUICC-Mandatory-GFSTEList."""
        return tuple(self.header["eUICC-Mandatory-GFSTEList"])

    @property
    def ef_iccid(self) -> str | None:
        """ICCID digits written to EF.ICCID by the PE-MF, if it writes one."""
        for element in self.named("mf"):
            content = _file_content(element.value.get("ef-iccid", []))
            if content:
                try:
                    return decode_iccid(content[:10].ljust(10, b"\xff"))
                except ValueError as exc:
                    raise SaipError(f"PE-MF EF.ICCID: {exc}") from None
        return None

    @property
    def imsi(self) -> str | None:
        """IMSI digits written to EF.IMSI by the first PE-USIM, if any."""
        for element in self.named("usim"):
            content = _file_content(element.value.get("ef-imsi", []))
            if content:
                try:
                    return decode_imsi(content)
                except ValueError as exc:
                    raise SaipError(f"PE-USIM EF.IMSI: {exc}") from None
        return None

    @property
    def der(self) -> bytes:
        """The package bytes, exactly as decoded."""
        return b"".join(element.raw for element in self.elements)


def _file_content(file: list[tuple[str, Any]]) -> bytes:
    """Bytes a SAIP ``File`` writes from offset 0 until its first gap (enough for IDs)."""
    content = b""
    for kind, item in file:
        if kind == "fillFileContent":
            content += item
        elif kind == "fillFileOffset" and item:
            break
    return content


def split_profile_elements(der: bytes) -> list[bytes]:
    """Split a package into the raw DER of each PE, byte-exact; SaipError if not pure TLVs."""
    try:
        return [item.raw for item in iter_tlvs(der)]
    except TlvError as exc:
        raise SaipError(f"profile package is not a sequence of DER TLVs: {exc}") from None


def _alternative_for(raw: bytes) -> str:
    """The ProfileElement alternative a PE's tag stands for (for error messages)."""
    choice = saip().types["ProfileElement"].type
    for member in getattr(choice, "members", ()):
        tag = bytes(getattr(member, "tag", b"") or b"")
        if tag and raw.startswith(tag):
            return member.name
    return f"unknown tag {raw[:2].hex().upper()}"


def decode_profile_package(der: bytes) -> ProfilePackage:
    """Decode every PE of a package (no structural checks: see validate_profile_package)."""
    spec = saip()
    offset = 0
    elements = []
    for index, raw in enumerate(split_profile_elements(der)):
        try:
            name, value = decode_exact(spec, "ProfileElement", raw)
        except Asn1Error as exc:
            raise SaipError(
                f"PE #{index} ({_alternative_for(raw)}) at offset {offset} does not decode: {exc}"
            ) from None
        if name is None:
            # EXTENSIBILITY IMPLIED: asn1tools returns (None, None) for an unknown alternative.
            raise SaipError(
                f"PE #{index} at offset {offset}: tag {raw[:2].hex().upper()} is not a "
                "ProfileElement this implementation knows"
            )
        elements.append(ProfileElement(name=name, value=value, raw=raw))
        offset += len(raw)
    return ProfilePackage(elements=elements)


# Header services that promise PEs: service -> what must be in the package.
_SERVICE_NAAS = {"usim": ("usim", "iot"), "isim": ("isim",), "csim": ("csim",)}
_SERVICE_ALGORITHMS = {"milenage": 1, "tuak128": 2, "tuak256": 2, "usim-test-algorithm": 3}


def validate_profile_package(der: bytes) -> ProfilePackage:
    """Decode a package and check its structure; raise SaipError naming the first problem.

    Checks: every PE decodes; the ProfileHeader comes first and only once; PE-End comes
    last and only once; PE identification numbers are unique; a file system is created
    (PE-MF, directly after the header, or PE-IoT); at most one PE-PUKCodes; the header's
    ICCID is BCD and equals EF.ICCID when the PE-MF writes one (the eUICC checks the
    SGP.22 metadata ICCID against EF.ICCID, and the SM-DP+ takes it from the header);
    every NAA and algorithm the header's mandatory services name is present; every
    template a PE uses is listed in eUICC-Mandatory-GFSTEList; within one DF of a PE no two
    files declare the same file ID, and no file is filled beyond the size it declares.
    """
    package = decode_profile_package(der)
    elements = package.elements
    if not elements:
        raise SaipError("profile package is empty")
    names = [element.name for element in elements]
    if names[0] != "header":
        raise SaipError(f"PE #0 is '{names[0]}', but a package must start with the ProfileHeader")
    if names.count("header") != 1:
        raise SaipError(f"ProfileHeader appears again as PE #{names.index('header', 1)}")
    if names[-1] != "end":
        raise SaipError(
            f"last PE #{len(names) - 1} is '{names[-1]}', but a package must end with PE-End"
        )
    if names.count("end") != 1:
        raise SaipError(f"PE-End appears before the end, as PE #{names.index('end')}")
    seen: dict[int, int] = {}
    for index, element in enumerate(elements[1:], start=1):
        number = element.identification
        if number in seen:
            raise SaipError(
                f"PE #{index} ({element.name}) reuses identification {number} of PE #{seen[number]}"
            )
        if number is not None:
            seen[number] = index
    if "mf" in names and names.index("mf") != 1:
        raise SaipError(
            f"PE-MF is PE #{names.index('mf')}; it must directly follow the ProfileHeader"
        )
    if "mf" not in names and "iot" not in names:
        raise SaipError("no file system: the package has neither a PE-MF nor a PE-IoT")
    if names.count("pukCodes") > 1:
        raise SaipError("more than one PE-PUKCodes; all PUKs belong in a single PE")
    iccid = package.iccid
    ef_iccid = package.ef_iccid
    if ef_iccid is not None and ef_iccid != iccid:
        raise SaipError(f"ProfileHeader ICCID {iccid} differs from EF.ICCID content {ef_iccid}")
    _check_mandatory_services(package, names)
    _check_files(package)
    listed = set(package.mandatory_templates)
    for index, element in enumerate(elements):
        template = element.value.get("templateID") if isinstance(element.value, dict) else None
        if template is not None and template not in listed:
            raise SaipError(
                f"PE #{index} ({element.name}) uses template {template}, which "
                "eUICC-Mandatory-GFSTEList does not list"
            )
    return package


def _check_mandatory_services(package: ProfilePackage, names: list[str]) -> None:
    services = package.mandatory_services
    for service, alternatives in _SERVICE_NAAS.items():
        if service in services and not any(name in names for name in alternatives):
            raise SaipError(
                f"header requires service '{service}' but the package has no "
                f"{' or '.join('PE-' + a.upper() for a in alternatives)}"
            )
    algorithms = set()
    for element in package.named("akaParameter"):
        kind, parameters = element.value["algoConfiguration"]
        if kind == "algoParameter":
            algorithms.add(parameters["algorithmID"])
    for service, algorithm_id in _SERVICE_ALGORITHMS.items():
        if service in services and algorithm_id not in algorithms:
            raise SaipError(
                f"header requires service '{service}' but no PE-AKAParameter configures "
                f"algorithmID {algorithm_id}"
            )
    if "cave" in services and "cdmaParameter" not in names:
        raise SaipError("header requires service 'cave' but the package has no PE-CDMAParameter")


def _check_files(package: ProfilePackage) -> None:
    """File IDs unique per DF, and content within the declared file size, in every PE.

    A PE lists its DFs and EFs in template order, each DF (``df-*``, ``adf-*``, ``mf``) followed by
    its own files, so the last DF seen is the parent of the files after it."""
    for index, element in enumerate(package.elements):
        if not isinstance(element.value, dict):
            continue
        directory, seen = "", {}  # type: ignore[var-annotated]
        for key, member in element.value.items():
            if not isinstance(member, list) or not member or not isinstance(member[0], tuple):
                continue
            fcp = next((item for kind, item in member if kind == "fileDescriptor" and isinstance(item, dict)), {})
            if key == "mf" or key.startswith(("df-", "adf-")):
                directory, seen = key, {}
            file_id = fcp.get("fileID")
            if file_id is not None:
                fid = bytes(file_id).hex().upper()
                if fid in seen and seen[fid] != key:
                    raise SaipError(
                        f"PE #{index} ({element.name}): {key} and {seen[fid]} both have file ID {fid}"
                        + (f" in {directory}" if directory else "")
                    )
                seen[fid] = key
            if "efFileSize" in fcp:
                size = int.from_bytes(fcp["efFileSize"], "big")
                end = _content_end(member)
                if end > size:
                    raise SaipError(
                        f"PE #{index} ({element.name}) {key}: content reaches byte {end}, "
                        f"beyond its declared size of {size} bytes"
                    )


def _content_end(file: list[tuple[str, Any]]) -> int:
    """One past the last byte a SAIP File's fill commands write (offsets are relative moves)."""
    position = end = 0
    for kind, item in file:
        if kind == "fillFileContent":
            position += len(item)
            end = position
        elif kind == "fillFileOffset":
            position += item
    return end
