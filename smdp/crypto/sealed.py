"""Encryption at rest for secrets kept in the database (not an SGP.22 interface).

A download session spans several ES9+ requests, possibly served by different workers, so the
one-time private key otSK.DP.ECKA (and similar secrets) must be stored between steps. They are
stored sealed: AES-256-GCM under a master key that lives in a file outside the database.

Blob format (version 1): ``0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)``. The caller's
``context`` (e.g. b"session-otsk:" + transaction id) is the associated data, so a blob copied to
another row or purpose does not open.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smdp.atomic import write_atomic

__all__ = ["MASTER_KEY_SIZE", "Sealer", "load_or_create_master_key"]

MASTER_KEY_SIZE = 32
_VERSION = 0x01
_NONCE = 12
_TAG = 16


class Sealer:
    """Seals and opens small secrets with one master key."""

    def __init__(self, master_key: bytes) -> None:
        if not isinstance(master_key, bytes) or len(master_key) != MASTER_KEY_SIZE:
            raise ValueError(f"master key must be {MASTER_KEY_SIZE} bytes")
        self._aead = AESGCM(master_key)

    def __repr__(self) -> str:
        return "Sealer(<master key redacted>)"

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``context``; a fresh random nonce every call."""
        nonce = secrets.token_bytes(_NONCE)
        header = bytes([_VERSION])
        return header + nonce + self._aead.encrypt(nonce, plaintext, header + context)

    def open(self, blob: bytes, *, context: bytes) -> bytes:
        """Decrypt a sealed blob; ValueError if altered, malformed, or ``context`` differs."""
        if len(blob) < 1 + _NONCE + _TAG:
            raise ValueError("sealed blob too short")
        if blob[0] != _VERSION:
            raise ValueError(f"unknown sealed blob version {blob[0]}")
        # The version byte is authenticated too, so it cannot be swapped for a future format.
        nonce = blob[1 : 1 + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[1 + _NONCE :], blob[:1] + context)
        except InvalidTag:
            raise ValueError(
                "sealed blob failed authentication (tampered or wrong context)"
            ) from None


def load_or_create_master_key(path: Path) -> bytes:
    """Read the 32-byte master key at ``path``, or create it (mode 0600) if the file is missing.

    Creation is atomic: the key is written to a temporary file in the same directory and then
    hard-linked into place, which fails if another process created the key first (then that key is
    read), so no reader ever sees a partial file. An existing file of any other size is refused.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):  # lost the race: use the key the other process wrote
            write_atomic(path, secrets.token_bytes(MASTER_KEY_SIZE), 0o600, overwrite=False)
    data = path.read_bytes()
    if len(data) != MASTER_KEY_SIZE:
        raise ValueError(
            f"master key file {path} holds {len(data)} bytes, expected {MASTER_KEY_SIZE}; "
            "refusing to use it (restore the right file, or move it away to create a new key, "
            "which makes existing sealed data unreadable)"
        )
    return data
