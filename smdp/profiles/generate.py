"""Identities and secrets for generated profiles: ICCIDs with their Luhn check digit (ITU-T E.118),
consecutive IMSIs (3GPP TS 23.003 section 2.2), random Ki, OPc from the operator's OP (MILENAGE,
3GPP TS 35.206) or random, and random PIN/PUK/ADM digits.

Secrets come from :mod:`secrets` (the OS CSPRNG); nothing here logs or prints them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from smdp.crypto.milenage import compute_opc
from smdp.profiles.personalize import Personalization
from smdp.profiles.saip import luhn_check_digit

__all__ = ["IdentityRange", "new_personalization"]


@dataclass(frozen=True)
class IdentityRange:
    """``count`` consecutive identities. ``iccid_start`` is the ICCID *without* its check digit
    (18 or 19 digits, starting with 89: E.118 telecommunication issuer); each ICCID is the
    start plus n, same width, then the Luhn digit. ``imsi_start`` is a full IMSI (6..15 digits)."""

    iccid_start: str
    imsi_start: str
    count: int

    def __post_init__(self) -> None:
        if not (self.iccid_start.isascii() and self.iccid_start.isdigit() and 18 <= len(self.iccid_start) <= 19):
            raise ValueError(f"--iccid-start must be the 18 or 19 ICCID digits before the check digit, got {self.iccid_start!r}")
        if not self.iccid_start.startswith("89"):
            raise ValueError(f"--iccid-start {self.iccid_start} does not start with 89 (ITU-T E.118 telecom ICCIDs)")
        if not (self.imsi_start.isascii() and self.imsi_start.isdigit() and 6 <= len(self.imsi_start) <= 15):
            raise ValueError(f"--imsi-start must be an IMSI of 6 to 15 digits, got {self.imsi_start!r}")
        if self.count < 1:
            raise ValueError(f"--count must be at least 1, got {self.count}")
        last_iccid = str(int(self.iccid_start) + self.count - 1)
        if not last_iccid.startswith("89") or len(last_iccid) != len(self.iccid_start):
            raise ValueError(f"{self.count} ICCIDs from {self.iccid_start} would leave the 89 prefix ({last_iccid})")
        last_imsi = str(int(self.imsi_start) + self.count - 1).zfill(len(self.imsi_start))
        # The MCC and MNC (first 5 digits at least) must stay the same across the range.
        if len(last_imsi) > len(self.imsi_start) or last_imsi[:5] != self.imsi_start[:5]:
            raise ValueError(f"{self.count} IMSIs from {self.imsi_start} would leave its MCC/MNC ({last_imsi})")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        width_iccid, width_imsi = len(self.iccid_start), len(self.imsi_start)
        first_iccid, first_imsi = int(self.iccid_start), int(self.imsi_start)
        for n in range(self.count):
            body = str(first_iccid + n).zfill(width_iccid)
            yield body + luhn_check_digit(body), str(first_imsi + n).zfill(width_imsi)


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def new_personalization(iccid: str, imsi: str, code_lengths: dict[str, int], op: bytes | None = None) -> Personalization:
    """Fresh secrets for one profile: Ki random; OPc = MILENAGE OPc(Ki, OP) if ``op`` is given,
    else random (the operator then provisions OPc, not OP); each code random with its length."""
    ki = secrets.token_bytes(16)
    opc = compute_opc(ki, op) if op is not None else secrets.token_bytes(16)
    return Personalization(iccid, imsi, ki, opc, {name: _digits(n) for name, n in code_lengths.items()})
