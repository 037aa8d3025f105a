"""Confirmation Code hash (SGP.22 section 3.1.3 and ES10b.PrepareDownload, section 5.7.5: hashCc).

When the operator requires a Confirmation Code, the LPA passes the end user's code to the eUICC,
which sends back hashCc = SHA256(SHA256(Confirmation Code) || TransactionID) inside euiccSigned2.
Binding the hash to the TransactionID keeps one session's hashCc useless in another. The SM-DP+
computes the same value from the code it holds and compares. lpac (``euicc/es10b.c``,
``es10b_prepare_download``) hashes the code's bytes as entered, with no terminator, then the raw
transactionId octets; we follow that. This module is the one place hashCc is computed: the SM-DP+
(``smdp.services.download``) and the test LPA (``smdp.lpa.download``) both call it, so the two ends
cannot drift apart (the virtual eUICC only forwards the LPA's value, as a real one does).

At rest (our design, not SGP.22): the SM-DP+ needs SHA256(Confirmation Code) itself to compute the expected
hashCc, so a keyed one-way value such as HMAC(server key, code) cannot do the check, and an unkeyed one such
as the bare SHA256(code) falls to brute force in a second (codes are a few digits).  So what is stored, in
``Profile.cc_hash`` (and ``cc_hash_hex`` for the lab variant), is SHA256(code) **sealed** with the data
directory's master key (:class:`smdp.crypto.sealed.Sealer`: AES-256-GCM, a fresh nonce each time, context
``b"cc:" + ICCID`` or ``b"cc-hex:" + ICCID``), made once when the code is set (profile import, ES2+
ConfirmOrder) and opened only to check a hashCc.  A stolen database (file, backup, dump) without
``master.key`` gives nothing: no digest to brute-force, not even whether two profiles share a code, and a
blob moved to another profile does not open.  There is no HMAC column for lookups: the server never searches
by code (it finds the profile by matching ID or EID, then checks), so a second value derived from the code
would add exposure and no use.  Whoever has the master key too can open the digest and brute-force the code;
that key also opens the profile packages, so it is kept out of the database and its backups.
"""

from __future__ import annotations

import hashlib
import hmac

from smdp.crypto.sealed import Sealer

__all__ = [
    "confirmation_code_digest",
    "confirmation_code_digests",
    "confirmation_code_hash",
    "confirmation_code_hash_from_digest",
    "confirmation_code_matches",
    "open_confirmation_code_digest",
    "seal_confirmation_code",
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
    """What the SM-DP+ needs of a Confirmation Code (stored only sealed: :func:`seal_confirmation_code`):
    SHA256 of its characters as ASCII (what LPAs such as lpac hash), and SHA256 of its hex-decoded bytes
    when it is valid hex (what some test tools hash); the second is accepted only behind a lab option."""
    try:
        decoded: bytes | None = bytes.fromhex(confirmation_code)
    except ValueError:
        decoded = None
    return (
        confirmation_code_digest(confirmation_code.encode()),
        confirmation_code_digest(decoded) if decoded else None,
    )


def _context(iccid: str, hex_decoded: bool) -> bytes:
    return (b"cc-hex:" if hex_decoded else b"cc:") + iccid.encode()


def seal_confirmation_code(sealer: Sealer, iccid: str, confirmation_code: str | None) -> tuple[bytes | None, bytes | None]:
    """The values to store for profile ``iccid``'s Confirmation Code (cc_hash, cc_hash_hex): the digests of
    :func:`confirmation_code_digests`, sealed; (None, None) when no code is required."""
    if not confirmation_code:
        return None, None
    digest, hex_digest = confirmation_code_digests(confirmation_code)
    return (
        sealer.seal(digest, context=_context(iccid, False)),
        sealer.seal(hex_digest, context=_context(iccid, True)) if hex_digest is not None else None,
    )


def open_confirmation_code_digest(sealer: Sealer, iccid: str, sealed: bytes, *, hex_decoded: bool = False) -> bytes:
    """SHA256(Confirmation Code) from a value :func:`seal_confirmation_code` made for ``iccid`` (ValueError if
    it does not open: another key, another profile, altered)."""
    return sealer.open(sealed, context=_context(iccid, hex_decoded))
