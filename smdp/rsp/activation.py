"""Activation codes, SGP.22 section 4.1: ``LPA:1$<SM-DP+ address>$<matching ID>[$<SM-DP+ OID>[$<CC flag>]]``."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_ADDRESS = re.compile(r"^[A-Za-z0-9.\-:\[\]]+$")
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by people


@dataclass(frozen=True)
class ActivationCode:
    smdp_address: str
    matching_id: str
    smdp_oid: str | None = None
    confirmation_code_required: bool = False

    def __str__(self) -> str:
        parts = ["LPA:1", self.smdp_address, self.matching_id]
        if self.smdp_oid or self.confirmation_code_required:
            parts.append(self.smdp_oid or "")
        if self.confirmation_code_required:
            parts.append("1")
        return "$".join(parts)


def parse_activation_code(text: str) -> ActivationCode:
    """Parse an activation code; raises ValueError naming what is wrong."""
    value = text.strip()
    if value.upper().startswith("LPA:"):
        value = value[4:]
    parts = value.split("$")
    if len(parts) < 3 or parts[0] != "1":
        raise ValueError("an activation code looks like LPA:1$<SM-DP+ address>$<matching ID>")
    if len(parts) > 5:
        raise ValueError("an activation code has at most 5 $-separated fields")
    address, matching_id = parts[1], parts[2]
    if not address or not _ADDRESS.match(address):
        raise ValueError(f"invalid SM-DP+ address {address!r}")
    oid = parts[3] if len(parts) > 3 and parts[3] else None
    if oid is not None and not re.fullmatch(r"\d+(\.\d+)+", oid):
        raise ValueError(f"invalid SM-DP+ OID {oid!r}")
    cc = len(parts) > 4 and parts[4] == "1"
    return ActivationCode(address, matching_id, oid, cc)


def new_matching_id() -> str:
    """An unguessable matching ID (100 bits) of letters, digits and dashes, which every LPA accepts."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))
