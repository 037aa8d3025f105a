"""USIM elementary files that steer network selection (3GPP TS 31.102), with their PLMN coding.

* PLMN identity: 3 bytes as in 3GPP TS 24.008 section 10.5.1.3 (MCC digit 2 | digit 1,
  MNC digit 3 | MCC digit 3, MNC digit 2 | digit 1; 'F' for the third digit of a 2-digit MNC).
* EF.OPLMNwACT '6F61' (TS 31.102 section 4.2.53): operator controlled PLMN selector with access
  technology, 5 bytes per entry (PLMN + access technology identifier of section 4.2.5), in priority
  order; unused entries are 'FFFFFF0000'. The device uses it, after the HPLMN and the user list,
  to choose a visited network (3GPP TS 23.122 section 4.4.3.1.1). UST service 42 announces it.
* EF.FPLMN '6F7B' (TS 31.102 section 4.2.16): forbidden PLMNs, 3 bytes each, unused 'FFFFFF',
  at least 4 entries; the device never registers automatically on one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACCESS_TECHNOLOGIES",
    "FPLMN_MIN_ENTRIES",
    "OPLMNWACT_MIN_ENTRIES",
    "PlmnWithAct",
    "decode_fplmn",
    "decode_oplmnwact",
    "decode_plmn",
    "encode_fplmn",
    "encode_oplmnwact",
    "encode_plmn",
]

#: Access technology identifier bits (TS 31.102 section 4.2.5, two bytes as a big-endian number).
#: 'eutran' sets only b7 of byte 1, which Table 4.2.5.1 reads as E-UTRAN in WB-S1 and NB-S1 mode;
#: 'gsm' sets only b8 of byte 2, which Table 4.2.5.2 reads as GSM and EC-GSM-IoT.
ACCESS_TECHNOLOGIES: dict[str, int] = {"utran": 0x8000, "eutran": 0x4000, "ngran": 0x0800, "gsm": 0x0080}
_EUTRAN_MASK = 0x7000  # b7..b5 of byte 1 all speak of E-UTRAN
_GSM_MASK = 0x008C  # b8, b4, b3 of byte 2 all speak of GSM

#: Files sized below these minima are non-compliant (TS 31.102 sections 4.2.53 and 4.2.16).
OPLMNWACT_MIN_ENTRIES = 8
FPLMN_MIN_ENTRIES = 4

_UNUSED_PLMN = b"\xff\xff\xff"


def encode_plmn(mcc: str, mnc: str) -> bytes:
    """3-byte PLMN identity for ``mcc`` (3 digits) and ``mnc`` (2 or 3 digits)."""
    if len(mcc) != 3 or not mcc.isdigit() or not mcc.isascii():
        raise ValueError(f"MCC must be 3 digits, got {mcc!r}")
    if len(mnc) not in (2, 3) or not mnc.isdigit() or not mnc.isascii():
        raise ValueError(f"MNC must be 2 or 3 digits, got {mnc!r}")
    mnc3 = int(mnc[2]) if len(mnc) == 3 else 0xF
    return bytes([
        (int(mcc[1]) << 4) | int(mcc[0]),
        (mnc3 << 4) | int(mcc[2]),
        (int(mnc[1]) << 4) | int(mnc[0]),
    ])  # fmt: skip


def decode_plmn(data: bytes) -> tuple[str, str] | None:
    """(MCC, MNC) of a 3-byte PLMN identity; None for the unused value 'FFFFFF'."""
    if len(data) != 3:
        raise ValueError(f"a PLMN identity is 3 bytes, got {len(data)}")
    if data == _UNUSED_PLMN:
        return None
    nibbles = [data[0] & 0xF, data[0] >> 4, data[1] & 0xF, data[2] & 0xF, data[2] >> 4, data[1] >> 4]
    mcc, mnc = nibbles[:3], nibbles[3:] if nibbles[5] != 0xF else nibbles[3:5]
    if any(n > 9 for n in mcc + mnc):
        raise ValueError(f"PLMN identity {data.hex().upper()} is not BCD")
    return "".join(map(str, mcc)), "".join(map(str, mnc))


@dataclass(frozen=True)
class PlmnWithAct:
    """One EF.OPLMNwACT entry: a network and the access technologies to look for it on."""

    mcc: str
    mnc: str
    access_technologies: tuple[str, ...]

    @property
    def mccmnc(self) -> str:
        return self.mcc + self.mnc


def _act_bits(names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        if name not in ACCESS_TECHNOLOGIES:
            raise ValueError(f"unknown access technology {name!r} (known: {', '.join(ACCESS_TECHNOLOGIES)})")
        bits |= ACCESS_TECHNOLOGIES[name]
    return bits


def _act_names(bits: int) -> tuple[str, ...]:
    names = []
    if bits & 0x8000:
        names.append("utran")
    if bits & _EUTRAN_MASK:
        names.append("eutran")
    if bits & 0x0800:
        names.append("ngran")
    if bits & _GSM_MASK:
        names.append("gsm")
    return tuple(names)


def encode_oplmnwact(entries: list[PlmnWithAct], size: int | None = None) -> bytes:
    """EF.OPLMNwACT content: the entries in priority order, padded with unused entries to ``size``
    bytes (default: the minimum of 8 entries, or just the entries if there are more)."""
    body = b"".join(encode_plmn(e.mcc, e.mnc) + _act_bits(e.access_technologies).to_bytes(2, "big") for e in entries)
    size = max(len(body), OPLMNWACT_MIN_ENTRIES * 5) if size is None else size
    if size % 5 or size < len(body):
        raise ValueError(f"EF.OPLMNwACT of {size} bytes cannot hold {len(entries)} entries of 5 bytes")
    return body + b"\xff\xff\xff\x00\x00" * ((size - len(body)) // 5)


def decode_oplmnwact(content: bytes) -> list[PlmnWithAct]:
    """The used entries of an EF.OPLMNwACT (or EF.PLMNwACT / EF.HPLMNwACT) content, in order."""
    if len(content) % 5:
        raise ValueError(f"EF.OPLMNwACT content of {len(content)} bytes is not a multiple of 5")
    entries = []
    for offset in range(0, len(content), 5):
        plmn = decode_plmn(content[offset : offset + 3])
        if plmn is not None:
            bits = int.from_bytes(content[offset + 3 : offset + 5], "big")
            entries.append(PlmnWithAct(plmn[0], plmn[1], _act_names(bits)))
    return entries


def encode_fplmn(plmns: list[tuple[str, str]], size: int | None = None) -> bytes:
    """EF.FPLMN content for (MCC, MNC) pairs, padded with 'FFFFFF' to ``size`` bytes (default:
    the minimum of 4 entries, or just the entries if there are more)."""
    body = b"".join(encode_plmn(mcc, mnc) for mcc, mnc in plmns)
    size = max(len(body), FPLMN_MIN_ENTRIES * 3) if size is None else size
    if size % 3 or size < len(body):
        raise ValueError(f"EF.FPLMN of {size} bytes cannot hold {len(plmns)} entries of 3 bytes")
    return body + _UNUSED_PLMN * ((size - len(body)) // 3)


def decode_fplmn(content: bytes) -> list[tuple[str, str]]:
    """The used (MCC, MNC) entries of an EF.FPLMN content, in order."""
    if len(content) % 3:
        raise ValueError(f"EF.FPLMN content of {len(content)} bytes is not a multiple of 3")
    plmns = (decode_plmn(content[offset : offset + 3]) for offset in range(0, len(content), 3))
    return [plmn for plmn in plmns if plmn is not None]
