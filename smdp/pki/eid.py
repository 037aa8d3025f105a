"""The EID (eUICC identifier) and its check digits (SGP.02 Annex J / SGP.29, referenced by SGP.22).

An EID is 32 decimal digits whose last two are check digits per ISO/IEC 7064 MOD 97-10, the
scheme IBAN uses: with the check digits set to "00", they are 98 - (EID mod 97), so that a valid
EID read as an integer is 1 modulo 97. Its leading digits are the EUM's EIN (8 digits for the
SGP.02 "89" EIDs), which is what the EUM certificate's nameConstraints permit.
"""

from __future__ import annotations

import secrets

__all__ = ["EID_LENGTH", "eid_check_digits", "is_valid_eid", "random_eid"]

EID_LENGTH = 32


def _is_decimal(text: str) -> bool:
    # str.isdigit alone accepts non-ASCII digits such as "²", which int() then rejects or misreads.
    return text.isascii() and text.isdigit()


def eid_check_digits(first30: str) -> str:
    """The two check digits completing a 30-digit EID body (ISO/IEC 7064 MOD 97-10)."""
    if len(first30) != EID_LENGTH - 2 or not _is_decimal(first30):
        raise ValueError(f"EID body must be {EID_LENGTH - 2} decimal digits, got {first30!r}")
    return f"{98 - int(first30 + '00') % 97:02d}"


def is_valid_eid(eid: str) -> bool:
    """True if ``eid`` is 32 decimal digits with correct check digits."""
    return (
        isinstance(eid, str) and len(eid) == EID_LENGTH and _is_decimal(eid) and int(eid) % 97 == 1
    )


def random_eid(ein: str) -> str:
    """A random valid EID starting with ``ein`` (the digits after it come from ``secrets``)."""
    if not ein or len(ein) > EID_LENGTH - 2 or not _is_decimal(ein):
        raise ValueError(f"EIN must be 1..{EID_LENGTH - 2} decimal digits, got {ein!r}")
    fill = EID_LENGTH - 2 - len(ein)
    body = ein + "".join(str(secrets.randbelow(10)) for _ in range(fill))
    return body + eid_check_digits(body)
