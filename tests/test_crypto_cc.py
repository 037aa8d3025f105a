"""Confirmation Code hash hashCc (smdp.crypto.cc)."""

from __future__ import annotations

import hashlib

import pytest

from smdp.crypto.cc import (
    confirmation_code_digest,
    confirmation_code_hash,
    confirmation_code_hash_from_digest,
    confirmation_code_matches,
)

TRANSACTION_ID = bytes.fromhex("0123456789ABCDEF8899AABBCCDDEEFF")


def test_confirmation_code_hash_matches_openssl_computed_vector() -> None:
    # No published hashCc vector was found (pySim and lpac have none). This one was computed with
    # the openssl command line, in the order lpac's euicc/es10b.c uses:
    #   sha256( sha256("12345678") || 0123456789ABCDEF8899AABBCCDDEEFF )
    expected = bytes.fromhex("d36dfe02fcc86970ea290811663ce9a5ae3b58d1e24a0f5f6ea0ff870635b864")
    assert confirmation_code_hash(b"12345678", TRANSACTION_ID) == expected


def test_confirmation_code_hash_is_sha256_of_sha256_code_then_transaction_id() -> None:
    inner = hashlib.sha256(b"0000").digest()
    expected = hashlib.sha256(inner + TRANSACTION_ID).digest()
    assert confirmation_code_hash(b"0000", TRANSACTION_ID) == expected


def test_confirmation_code_hash_is_bound_to_the_transaction() -> None:
    other = TRANSACTION_ID[:-1] + b"\x00"
    assert confirmation_code_hash(b"1234", TRANSACTION_ID) != confirmation_code_hash(b"1234", other)


def test_confirmation_code_matches_accepts_right_code_only() -> None:
    hash_cc = confirmation_code_hash(b"1234", TRANSACTION_ID)
    assert confirmation_code_matches(hash_cc, b"1234", TRANSACTION_ID)
    assert not confirmation_code_matches(hash_cc, b"1235", TRANSACTION_ID)
    assert not confirmation_code_matches(hash_cc[:-1], b"1234", TRANSACTION_ID)


def test_confirmation_code_hash_refuses_empty_transaction_id() -> None:
    with pytest.raises(ValueError):
        confirmation_code_hash(b"1234", b"")


def test_hash_from_stored_digest_equals_hash_from_the_code() -> None:
    digest = confirmation_code_digest(b"12345678")
    assert confirmation_code_hash_from_digest(digest, TRANSACTION_ID) == confirmation_code_hash(
        b"12345678", TRANSACTION_ID
    )
    with pytest.raises(ValueError):
        confirmation_code_hash_from_digest(b"12345678", TRANSACTION_ID)
