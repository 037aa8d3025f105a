"""Confirmation Code hash (SGP.22 section 3.1.3 and ES10b.PrepareDownload, section 5.7.5: hashCc).

When the operator requires a Confirmation Code, the LPA passes the end user's code to the eUICC,
which sends back hashCc = SHA256(SHA256(Confirmation Code) || TransactionID) inside euiccSigned2.
Binding the hash to the TransactionID keeps one session's hashCc useless in another. The SM-DP+
computes the same value from the code it holds and compares. lpac (``euicc/es10b.c``,
``es10b_prepare_download``) hashes the code's bytes as entered, with no terminator, then the raw
transactionId octets; we follow that.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "confirmation_code_digest",
    "confirmation_code_digests",
    "confirmation_code_hash",
    "confirmation_code_hash_from_digest",
    "confirmation_code_matches",
]


def confirmation_code_digest(confirmation_code: bytes) -> bytes:
    """SHA256(Confirmation Code): all the SM-DP+ needs to keep, so the code itself is not stored."""
    return hashlib.sha256(confirmation_code).digest()


def confirmation_code_hash_from_digest(cc_digest: bytes, transaction_id: bytes) -> bytes:
    """hashCc from a stored SHA256(Confirmation Code): SHA256(cc_digest || transaction_id)."""
    if len(cc_digest) != 32:
        raise ValueError("confirmation code digest must be 32 bytes (SHA-256)")
    if not transaction_id:
        raise ValueError("transaction ID must not be empty")
    return hashlib.sha256(cc_digest + transaction_id).digest()


def confirmation_code_hash(confirmation_code: bytes, transaction_id: bytes) -> bytes:
    """hashCc = SHA256(SHA256(confirmation_code) || transaction_id), 32 bytes."""
    return confirmation_code_hash_from_digest(
        confirmation_code_digest(confirmation_code), transaction_id
    )


def confirmation_code_matches(
    hash_cc: bytes, confirmation_code: bytes, transaction_id: bytes
) -> bool:
    """True if ``hash_cc`` from the eUICC matches the expected code (constant-time comparison)."""
    return hmac.compare_digest(hash_cc, confirmation_code_hash(confirmation_code, transaction_id))


def confirmation_code_digests(confirmation_code: str) -> tuple[bytes, bytes | None]:
    """What the SM-DP+ keeps of a Confirmation Code: SHA256 of its characters as ASCII (what LPAs such as
    lpac hash), and SHA256 of its hex-decoded bytes when it is valid hex (what some test tools hash);
    the second is accepted only behind a lab option."""
    try:
        decoded: bytes | None = bytes.fromhex(confirmation_code)
    except ValueError:
        decoded = None
    return (
        confirmation_code_digest(confirmation_code.encode()),
        confirmation_code_digest(decoded) if decoded else None,
    )
