"""Personalization of a SAIP profile template (TCA eUICC Profile Package v2.x/v3.x): per profile
the ICCID (ProfileHeader and EF.ICCID), IMSI (EF.IMSI, and EF.ACC from its last digit, 3GPP TS
22.011 section 4), the AKA key and OPc (PE-AKAParameter), the PIN/PUK/ADM values (PE-PINCodes,
PE-PUKCodes); once per template the steering files of a policy (EF.OPLMNwACT in PE-OPT-USIM,
EF.FPLMN in PE-USIM, 3GPP TS 31.102; see :mod:`smdp.profiles.usim_files`).

A :class:`Template` decodes and checks the package once; :meth:`Template.personalize` then
re-encodes only the PEs that carry per-profile values and reuses the DER of every other PE as it
is, which is what makes generating many profiles cheap (a TS.48 profile has ~30 PEs; about 7
change). The result is the complete DER of the personalized package, encoded once and stored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from smdp.codec.asn1 import Asn1Error, saip
from smdp.profiles.saip import (
    ProfilePackage,
    SaipError,
    encode_header_iccid,
    encode_iccid,
    encode_imsi,
    validate_profile_package,
)
from smdp.profiles.usim_files import PlmnWithAct, encode_fplmn, encode_oplmnwact

__all__ = ["ALGORITHMS", "Personalization", "SteeringFiles", "Template", "code_name", "encode_element", "with_iccid"]

#: What a profile type may say about AKA: switch to Milenage with the generated Ki/OPc (default),
#: or keep the template's algorithm (e.g. the TS.48 test algorithm) and only set the key.
ALGORITHMS = ("milenage", "template")
_MILENAGE = 1
TEMPLATE_OPT_USIM = "2.23.143.1.2.5"  # SAIP Annex A: optional files of ADF.USIM
_UST_OPLMNWACT = 42  # TS 31.102 section 4.2.8: service n°42, Operator controlled PLMN selector with AcT


def code_name(kind: str, key_reference: int) -> str:
    """A readable name for a PIN/PUK key reference (ETSI TS 102 221 section 9.5.1): PIN1 ('01'),
    PIN2 ('81'), ADM1..ADM5 ('0A'..'0E'), ADM6..ADM10 ('8A'..'8E'), else e.g. PIN-85."""
    if key_reference in (0x01, 0x81):
        return f"{kind}{1 if key_reference == 0x01 else 2}"
    if kind == "PIN" and 0x0A <= key_reference <= 0x0E:
        return f"ADM{key_reference - 0x09}"
    if kind == "PIN" and 0x8A <= key_reference <= 0x8E:
        return f"ADM{key_reference - 0x84}"
    return f"{kind}-{key_reference:02X}"


@dataclass(frozen=True)
class SteeringFiles:
    """The USIM files a policy's roaming steering writes."""

    oplmnwact: list[PlmnWithAct]
    fplmn: list[tuple[str, str]]


@dataclass(frozen=True)
class Personalization:
    """One profile's values. ``codes`` maps code names (see :func:`code_name`) to their digits."""

    iccid: str
    imsi: str
    ki: bytes
    opc: bytes
    codes: dict[str, str] = field(default_factory=dict)


def _items(value: dict[str, Any], name: str) -> list[tuple[str, Any]]:
    return list(value.get(name) or [])


def _fcp(items: list[tuple[str, Any]]) -> dict[str, Any] | None:
    return next((dict(item) for kind, item in items if kind == "fileDescriptor"), None)


def _size_bytes(size: int) -> bytes:
    return size.to_bytes(max(1, (size.bit_length() + 7) // 8), "big")


def _write_file(items: list[tuple[str, Any]], encode: Any, entry: int) -> list[tuple[str, Any]]:
    """A SAIP File that keeps the template's FCP and holds ``encode(size)`` from offset 0. The file
    keeps its declared size if the content fits, else grows; without a declared size it gets an
    explicit one, so the result never depends on a template default we cannot see. ``encode(None)``
    gives the content at its smallest compliant size."""
    fcp = _fcp(items) or {}
    declared = int.from_bytes(fcp["efFileSize"], "big") if "efFileSize" in fcp else 0
    size = max(declared - declared % entry, len(encode(None)))
    fcp["efFileSize"] = _size_bytes(max(declared, size))
    return [("fileDescriptor", fcp), ("fillFileContent", encode(size))]


def _set_service(items: list[tuple[str, Any]], service: int) -> list[tuple[str, Any]]:
    """EF.UST with ``service`` available (bit (n-1) mod 8 of byte (n-1) div 8, TS 31.102 4.2.8)."""
    result, done = [], False
    for kind, item in items:
        if kind == "fillFileContent" and not done:
            table = bytearray(item)
            index = (service - 1) // 8
            if index >= len(table):
                raise SaipError(f"EF.UST content of {len(table)} bytes cannot announce service {service}")
            table[index] |= 1 << ((service - 1) % 8)
            item, done = bytes(table), True
        result.append((kind, item))
    if not done:
        raise SaipError("the PE-USIM writes no EF.UST content, so service 42 (EF.OPLMNwACT) cannot be announced")
    return result


class Template:
    """A template package prepared for personalization (decoded and validated once)."""

    def __init__(self, der: bytes, *, algorithm: str = "milenage", steering: SteeringFiles | None = None) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        package = validate_profile_package(der)
        self.algorithm = algorithm
        names = [element.name for element in package.elements]
        self._values: list[Any] = [element.value for element in package.elements]
        self._raw: list[bytes | None] = [element.raw for element in package.elements]
        self._names = names
        self._usim = self._single(names, "usim")
        if "ef-imsi" not in self._values[self._usim]:
            raise SaipError("template: the PE-USIM has no EF.IMSI to personalize")
        self._aka = [i for i, n in enumerate(names) if n == "akaParameter"
                     and self._values[i]["algoConfiguration"][0] == "algoParameter"]  # fmt: skip
        if not self._aka:
            raise SaipError("template: no PE-AKAParameter with an AlgoParameter to carry Ki/OPc")
        self._mf = names.index("mf") if "mf" in names else None
        self._codes = [i for i, n in enumerate(names) if n in ("pinCodes", "pukCodes")]
        self.code_lengths = self._code_lengths()
        if algorithm == "milenage":
            self._switch_to_milenage()
        if steering is not None:
            self._write_steering(steering)
        # PEs changed for the whole template (steering, algorithm) are encoded here, once; those that
        # change per profile are re-encoded by personalize(); all others keep their DER.
        per_profile = {0, self._usim, *self._aka, *self._codes} | ({self._mf} if self._mf is not None else set())
        for index, raw in enumerate(self._raw):
            if index in per_profile:
                self._raw[index] = None
            elif raw is None:
                self._raw[index] = self._encode(index, self._values[index])

    @staticmethod
    def _single(names: list[str], name: str) -> int:
        if names.count(name) != 1:
            raise SaipError(f"template: expected exactly one PE-{name.upper()}, found {names.count(name)}")
        return names.index(name)

    @classmethod
    def from_package(cls, package: ProfilePackage, **options: Any) -> Template:
        return cls(package.der, **options)

    # --- once per template ---------------------------------------------------------------------

    def _code_lengths(self) -> dict[str, int]:
        """Code name -> number of digits, from the template's own values (at least 4 for PINs, 8 for
        PUKs: TS 102 221 section 9.5 PINs are 4..8 digits, PUKs 8)."""
        lengths: dict[str, int] = {}
        for index in self._codes:
            for kind, entry in self._code_entries(index):
                value = entry["pinValue" if kind == "PIN" else "pukValue"]
                digits = len(bytes(value).rstrip(b"\xff"))
                lengths[code_name(kind, entry["keyReference"])] = max(digits, 4 if kind == "PIN" else 8)
        return lengths

    def _code_entries(self, index: int) -> list[tuple[str, dict[str, Any]]]:
        value = self._values[index]
        if self._names[index] == "pukCodes":
            return [("PUK", entry) for entry in value["pukCodes"]]
        kind, entries = value["pinCodes"]
        return [("PIN", entry) for entry in entries] if kind == "pinconfig" else []

    def _switch_to_milenage(self) -> None:
        header = self._values[0]
        services = dict(header["eUICC-Mandatory-services"])
        services.pop("usim-test-algorithm", None)
        services["milenage"] = None
        self._values[0] = {**header, "eUICC-Mandatory-services": services}
        for index in self._aka:
            value = copy.deepcopy(self._values[index])
            kind, parameters = value["algoConfiguration"]
            # Milenage with the standard r/c constants (the DEFAULTs); options 0: plain OPc.
            value["algoConfiguration"] = (kind, {"algorithmID": _MILENAGE, "algorithmOptions": b"\x00",
                                                 "key": parameters["key"], "opc": parameters["opc"]})  # fmt: skip
            self._values[index] = value

    def _write_steering(self, steering: SteeringFiles) -> None:
        usim = dict(self._values[self._usim])
        usim["ef-fplmn"] = _write_file(_items(usim, "ef-fplmn"), lambda size: encode_fplmn(steering.fplmn, size), 3)
        if steering.oplmnwact:
            usim["ef-ust"] = _set_service(_items(usim, "ef-ust"), _UST_OPLMNWACT)
            self._write_oplmnwact(steering.oplmnwact)
        self._values[self._usim] = usim

    def _write_oplmnwact(self, entries: list[PlmnWithAct]) -> None:
        def encode(size: int | None) -> bytes:
            return encode_oplmnwact(entries, size)

        if "opt-usim" in self._names:
            index = self._single(self._names, "opt-usim")
            value = dict(self._values[index])
            value["ef-oplmnwact"] = _write_file(_items(value, "ef-oplmnwact"), encode, 5)
            self._values[index] = value
            self._raw[index] = None
            return
        # No PE-OPT-USIM: add one right after the PE-USIM, with a fresh identification number,
        # and list its template in the header (validate_profile_package insists on both).
        identifications = [self._identification(i) for i in range(1, len(self._values))]
        number = max(n for n in identifications if n is not None) + 1
        value = {"optusim-header": {"mandated": None, "identification": number},
                 "templateID": TEMPLATE_OPT_USIM,
                 "ef-oplmnwact": _write_file([], encode, 5)}  # fmt: skip
        self._values.insert(self._usim + 1, value)
        self._raw.insert(self._usim + 1, None)
        self._names.insert(self._usim + 1, "opt-usim")
        self._aka = [i + 1 if i > self._usim else i for i in self._aka]
        self._codes = [i + 1 if i > self._usim else i for i in self._codes]
        header = self._values[0]
        templates = list(header["eUICC-Mandatory-GFSTEList"])
        if TEMPLATE_OPT_USIM not in templates:
            self._values[0] = {**header, "eUICC-Mandatory-GFSTEList": [*templates, TEMPLATE_OPT_USIM]}

    def _identification(self, index: int) -> int | None:
        value = self._values[index]
        for key, member in value.items():
            if key.lower().endswith("header") and isinstance(member, dict):
                return member.get("identification")
        return None

    # --- per profile ---------------------------------------------------------------------------

    def personalize(self, values: Personalization) -> bytes:
        """The DER of the template personalized with ``values`` (SaipError if a value does not fit)."""
        if len(values.ki) != 16 or len(values.opc) != 16:
            raise SaipError(f"Ki and OPc must be 16 bytes, got {len(values.ki)} and {len(values.opc)}")
        missing = set(self.code_lengths) - set(values.codes)
        if missing:
            raise SaipError(f"no value for {', '.join(sorted(missing))}")
        changed: dict[int, Any] = with_iccid(self._names, self._values, values.iccid)
        usim = dict(self._values[self._usim])
        usim["ef-imsi"] = _replace_content(usim["ef-imsi"], encode_imsi(values.imsi))
        if "ef-acc" in usim:
            # Access class 0..9 from the IMSI's last digit (TS 22.011 section 4.2).
            usim["ef-acc"] = _replace_content(usim["ef-acc"], (1 << int(values.imsi[-1])).to_bytes(2, "big"))
        changed[self._usim] = usim
        for index in self._aka:
            value = dict(self._values[index])
            kind, parameters = value["algoConfiguration"]
            value["algoConfiguration"] = (kind, {**parameters, "key": values.ki, "opc": values.opc})
            changed[index] = value
        for index in self._codes:
            changed[index] = self._with_codes(index, values.codes)
        return b"".join(
            raw if raw is not None else self._encode(index, changed.get(index, self._values[index]))
            for index, raw in enumerate(self._raw)
        )

    def _encode(self, index: int, value: Any) -> bytes:
        return encode_element(index, self._names[index], value)

    def _with_codes(self, index: int, codes: dict[str, str]) -> dict[str, Any]:
        value = copy.copy(self._values[index])
        if self._names[index] == "pukCodes":
            value["pukCodes"] = [
                {**entry, "pukValue": codes[code_name("PUK", entry["keyReference"])].encode()}
                for entry in value["pukCodes"]
            ]
            return value
        kind, entries = value["pinCodes"]
        if kind == "pinconfig":
            value["pinCodes"] = (kind, [
                {**entry, "pinValue": codes[code_name("PIN", entry["keyReference"])].encode().ljust(8, b"\xff")}
                for entry in entries
            ])  # fmt: skip
        return value


def encode_element(index: int, name: str, value: Any) -> bytes:
    """The DER of PE #``index``, the ProfileElement alternative ``name`` with ``value`` (SaipError if the value
    breaks a constraint: a personalized or stamped package must decode again exactly as it was meant)."""
    try:
        return saip().encode("ProfileElement", (name, value), check_constraints=True)
    except (Asn1Error, ValueError, TypeError) as exc:
        raise SaipError(f"PE #{index} ({name}) does not encode: {exc}") from None


def with_iccid(names: list[str], values: list[Any], iccid: str) -> dict[int, Any]:
    """PE index -> new value, for the PEs that carry the ICCID: the ProfileHeader (PE #0; non-swapped BCD)
    and the PE-MF when it has an EF.ICCID (its content at offset 0; swapped BCD, TS 102 221 13.2). Both are
    always written together, since validate_profile_package (and the eUICC, against the SGP.22 metadata)
    insist that they agree; personalization and ICCID stamping (:mod:`smdp.profiles.stamp`) share this."""
    changed: dict[int, Any] = {0: {**values[0], "iccid": encode_header_iccid(iccid)}}
    if "mf" in names:
        index = names.index("mf")
        mf = dict(values[index])
        if "ef-iccid" in mf:
            mf["ef-iccid"] = _replace_content(mf["ef-iccid"], encode_iccid(iccid))
        changed[index] = mf
    return changed


def _replace_content(items: list[tuple[str, Any]], content: bytes) -> list[tuple[str, Any]]:
    """The File with its first fillFileContent (at offset 0) replaced by ``content``."""
    result, done = [], False
    for kind, item in items:
        if kind == "fillFileContent" and not done:
            item, done = content, True
        result.append((kind, item))
    return result if done else [*result, ("fillFileContent", content)]
