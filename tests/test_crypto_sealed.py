"""Encryption at rest for DB secrets (smdp.crypto.sealed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from smdp.crypto.sealed import MASTER_KEY_SIZE, Sealer, load_or_create_master_key

KEY = bytes(range(32))
CONTEXT = b"session-otsk:0123456789abcdef"


def test_sealer_round_trip() -> None:
    sealer = Sealer(KEY)
    for secret in (b"", b"x", os.urandom(32), os.urandom(5000)):
        assert sealer.open(sealer.seal(secret, context=CONTEXT), context=CONTEXT) == secret


def test_sealed_blob_is_versioned_and_uses_fresh_nonces() -> None:
    sealer = Sealer(KEY)
    a, b = sealer.seal(b"secret", context=CONTEXT), sealer.seal(b"secret", context=CONTEXT)
    assert a[0] == b[0] == 0x01
    assert a != b
    assert b"secret" not in a


def test_open_with_wrong_context_fails() -> None:
    sealer = Sealer(KEY)
    blob = sealer.seal(b"secret", context=CONTEXT)
    with pytest.raises(ValueError):
        sealer.open(blob, context=CONTEXT + b"x")


@pytest.mark.parametrize("position", [0, 1, 12, 13, -1])
def test_open_of_tampered_blob_fails(position: int) -> None:
    sealer = Sealer(KEY)
    blob = bytearray(sealer.seal(b"secret", context=CONTEXT))
    blob[position] ^= 0x01
    with pytest.raises(ValueError):
        sealer.open(bytes(blob), context=CONTEXT)


def test_open_of_truncated_blob_or_other_key_fails() -> None:
    blob = Sealer(KEY).seal(b"secret", context=CONTEXT)
    for bad in (b"", blob[:10], blob[:-1]):
        with pytest.raises(ValueError):
            Sealer(KEY).open(bad, context=CONTEXT)
    with pytest.raises(ValueError):
        Sealer(bytes(32)).open(blob, context=CONTEXT)


def test_sealer_refuses_wrong_key_size_and_hides_key_in_repr() -> None:
    with pytest.raises(ValueError):
        Sealer(bytes(16))
    assert KEY.hex() not in repr(Sealer(KEY))


def test_master_key_file_is_created_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == MASTER_KEY_SIZE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temp file left


def test_master_key_file_keeps_mode_0600_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "master.key"
        load_or_create_master_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_master_key_file_of_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(bytes(size))
    with pytest.raises(ValueError, match="expected 32"):
        load_or_create_master_key(path)
    assert path.read_bytes() == bytes(size)  # never overwritten
