"""BSP / SCP03t segment protection: known answers, round trips, and rejection (smdp.crypto.bsp)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smdp.crypto.bsp import (
    MAX_ENCRYPTED_PAYLOAD,
    MAX_MAC_ONLY_PAYLOAD,
    MAX_SEGMENT_SIZE,
    BspError,
    BspReceiver,
    BspSender,
)
from smdp.crypto.kdf import SessionKeys

h = bytes.fromhex

# osmocom pySim, tests/unittests/test_esim_bsp.py, BSP_Test_mode51.test_ciphering: session keys
# and segments from a trace of a third-party SM-DP+ (ConfigureISDP, StoreMetadata,
# ReplaceSessionKeys, in this order on one key set).
MODE51_KEYS = SessionKeys(
    s_enc=h("472f5bfadd97f21d34f3ce9b51b92751"),
    s_mac=h("9ec07f5b36a13e12a991d66e294e6242"),
    initial_mcv=h("406d507b448a699e7a36a38494debbde"),
)
CONFIGURE_ISDP = h("bf2400")
CONFIGURE_ISDP_87 = h("8718f6fe031e4b9cfe87c8e1e62f3fde85c49412d7722a6a2d89")
STORE_METADATA = h(
    "bf252d5a0a98001032547698103214910947534d415f54455354921147534d415f544553545f50524f46494c45"
    "950100"
)
STORE_METADATA_88 = h(
    "8838bf252d5a0a98001032547698103214910947534d415f54455354921147534d415f544553545f50524f46494c45"
    "9501008a62cc9adbb5ccbc"
)
REPLACE_SESSION_KEYS = h(
    "bf26368010000102030405060708090a0b0c0d0e0f8110010102030405060708090a0b0c0d0e0f8210020102030405"
    "060708090a0b0c0d0e0f"
)
REPLACE_SESSION_KEYS_87 = h(
    "8748a14c800a001992351cd46ad2945654674369701d82b7b46567652bc8fbed234939fc57fba748015525fd6c651e"
    "9d3d1330652d42a0cfad950e912122af4ec5362d3c0bc535729c40"
)

KEYS = SessionKeys(s_enc=bytes(range(16)), s_mac=bytes(range(16, 32)), initial_mcv=bytes(16))


def test_sender_reproduces_third_party_smdp_segments() -> None:
    sender = BspSender(MODE51_KEYS)
    assert sender.encrypt_and_mac(0x87, CONFIGURE_ISDP) == [CONFIGURE_ISDP_87]
    assert sender.mac_only(0x88, STORE_METADATA) == [STORE_METADATA_88]
    # This one only matches if the MAC-only '88' segment advanced the ICV block counter.
    assert sender.encrypt_and_mac(0x87, REPLACE_SESSION_KEYS) == [REPLACE_SESSION_KEYS_87]


def test_receiver_opens_third_party_smdp_segments() -> None:
    receiver = BspReceiver(MODE51_KEYS)
    assert receiver.verify_and_decrypt(CONFIGURE_ISDP_87) == CONFIGURE_ISDP
    assert receiver.verify_mac_only(STORE_METADATA_88) == STORE_METADATA
    assert receiver.verify_and_decrypt(REPLACE_SESSION_KEYS_87) == REPLACE_SESSION_KEYS


@pytest.mark.parametrize(
    "size",
    [0, 1, 15, 16, 17, MAX_ENCRYPTED_PAYLOAD - 1, MAX_ENCRYPTED_PAYLOAD, MAX_ENCRYPTED_PAYLOAD + 1,
     2 * MAX_ENCRYPTED_PAYLOAD, 20 * 1024, 3 * MAX_ENCRYPTED_PAYLOAD + 5],
)
def test_encrypted_round_trip_for_any_size(size: int) -> None:
    data = os.urandom(size)
    segments = BspSender(KEYS).encrypt_and_mac(0x86, data)
    assert len(segments) == max(1, -(-size // MAX_ENCRYPTED_PAYLOAD))
    assert all(len(s) <= MAX_SEGMENT_SIZE for s in segments)
    receiver = BspReceiver(KEYS)
    assert b"".join(receiver.verify_and_decrypt(s) for s in segments) == data


def test_exactly_fitting_encrypted_segment_is_1020_bytes() -> None:
    segment = BspSender(KEYS).encrypt_and_mac_one(0x86, bytes(MAX_ENCRYPTED_PAYLOAD))
    assert len(segment) == MAX_SEGMENT_SIZE
    assert segment[:4] == h("868203f8")


@pytest.mark.parametrize("size", [0, 1, MAX_MAC_ONLY_PAYLOAD, MAX_MAC_ONLY_PAYLOAD + 1, 3000])
def test_mac_only_round_trip_keeps_data_readable(size: int) -> None:
    data = os.urandom(size)
    segments = BspSender(KEYS).mac_only(0x88, data)
    assert all(len(s) <= MAX_SEGMENT_SIZE for s in segments)
    assert data[:MAX_MAC_ONLY_PAYLOAD] in segments[0]
    receiver = BspReceiver(KEYS)
    assert b"".join(receiver.verify_mac_only(s) for s in segments) == data


def test_exactly_fitting_mac_only_segment_is_1020_bytes() -> None:
    assert len(BspSender(KEYS).mac_only_one(0x88, bytes(MAX_MAC_ONLY_PAYLOAD))) == MAX_SEGMENT_SIZE


def test_whole_bpp_sequence_round_trips_on_one_key_set() -> None:
    sender, receiver = BspSender(KEYS), BspReceiver(KEYS)
    parts = [
        ("enc", sender.encrypt_and_mac(0x87, CONFIGURE_ISDP), CONFIGURE_ISDP),
        ("mac", sender.mac_only(0x88, STORE_METADATA * 30), STORE_METADATA * 30),
        ("enc", sender.encrypt_and_mac(0x86, bytes(5000)), bytes(5000)),
    ]
    for kind, segments, expected in parts:
        opened = [
            receiver.verify_and_decrypt(s) if kind == "enc" else receiver.verify_mac_only(s)
            for s in segments
        ]
        assert b"".join(opened) == expected


def test_sender_refuses_oversized_single_segment_and_wrong_tags() -> None:
    sender = BspSender(KEYS)
    with pytest.raises(ValueError):
        sender.encrypt_and_mac_one(0x86, bytes(MAX_ENCRYPTED_PAYLOAD + 1))
    with pytest.raises(ValueError):
        sender.mac_only_one(0x88, bytes(MAX_MAC_ONLY_PAYLOAD + 1))
    with pytest.raises(ValueError):
        sender.encrypt_and_mac(0x88, b"x")
    with pytest.raises(ValueError):
        sender.mac_only(0x86, b"x")


def _three_segments() -> list[bytes]:
    return BspSender(KEYS).encrypt_and_mac(0x86, os.urandom(3 * MAX_ENCRYPTED_PAYLOAD))


def _open_all(segments: list[bytes]) -> None:
    receiver = BspReceiver(KEYS)
    for s in segments:
        receiver.verify_and_decrypt(s)


@pytest.mark.parametrize("position", [0, 1, 3, 500, -9, -1])
def test_receiver_rejects_a_flipped_byte(position: int) -> None:
    segments = _three_segments()
    tampered = bytearray(segments[1])
    tampered[position] ^= 0x01
    with pytest.raises(BspError):
        _open_all([segments[0], bytes(tampered), segments[2]])


def test_receiver_rejects_swapped_segments() -> None:
    a, b, c = _three_segments()
    with pytest.raises(BspError):
        _open_all([a, c, b])


def test_receiver_rejects_a_dropped_segment() -> None:
    a, _b, c = _three_segments()
    with pytest.raises(BspError):
        _open_all([a, c])


def test_receiver_rejects_a_replayed_segment() -> None:
    a, b, c = _three_segments()
    with pytest.raises(BspError):
        _open_all([a, a, b, c])


def test_receiver_rejects_segment_under_other_keys() -> None:
    other = SessionKeys(s_enc=KEYS.s_enc, s_mac=bytes(16), initial_mcv=KEYS.initial_mcv)
    with pytest.raises(BspError):
        BspReceiver(other).verify_and_decrypt(BspSender(KEYS).encrypt_and_mac_one(0x86, b"x"))


def test_receiver_stays_failed_after_an_error() -> None:
    a, b, c = _three_segments()
    receiver = BspReceiver(KEYS)
    with pytest.raises(BspError):
        receiver.verify_and_decrypt(b)
    for segment in (a, b, c):
        with pytest.raises(BspError):
            receiver.verify_and_decrypt(segment)


def test_receiver_rejects_wrong_tag_for_the_operation() -> None:
    sender = BspSender(KEYS)
    mac_only = sender.mac_only_one(0x88, b"metadata")
    with pytest.raises(BspError):
        BspReceiver(KEYS).verify_and_decrypt(mac_only)
    encrypted = BspSender(KEYS).encrypt_and_mac_one(0x86, b"pe")
    with pytest.raises(BspError):
        BspReceiver(KEYS).verify_mac_only(encrypted)


def _forge(keys: SessionKeys, tag: int, ciphertext_plain: bytes) -> bytes:
    """A correctly MACed first segment whose decrypted content is ``ciphertext_plain`` verbatim
    (no BSP padding added), built independently of smdp.crypto.bsp."""
    ecb = Cipher(algorithms.AES(keys.s_enc), modes.ECB()).encryptor()
    icv = ecb.update((1).to_bytes(16, "big"))
    enc = Cipher(algorithms.AES(keys.s_enc), modes.CBC(icv)).encryptor()
    body = enc.update(ciphertext_plain) + enc.finalize()
    n = len(body) + 8
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = b"\x82" + n.to_bytes(2, "big")
    header = bytes([tag]) + length
    c = cmac.CMAC(algorithms.AES(keys.s_mac))
    c.update(keys.initial_mcv + header + body)
    return header + body + c.finalize()[:8]


def test_forged_segment_helper_agrees_with_sender() -> None:
    # The independent construction gives the sender's bytes when the padding is right.
    expected = BspSender(KEYS).encrypt_and_mac_one(0x86, b"abc")
    assert _forge(KEYS, 0x86, b"abc\x80" + bytes(12)) == expected


@pytest.mark.parametrize(
    "padded",
    [
        bytes(16),
        b"abc" + bytes(13),
        b"abc\x80\x01" + bytes(11),
        b"\x80" + bytes(31),
        b"x" * 15 + b"\x81",
    ],
)
def test_receiver_rejects_bad_padding_under_a_valid_mac(padded: bytes) -> None:
    with pytest.raises(BspError):
        BspReceiver(KEYS).verify_and_decrypt(_forge(KEYS, 0x86, padded))


@pytest.mark.parametrize(
    "segment",
    [
        b"",
        b"\x86",
        b"\x86\x00",
        b"\x86\x05abc",  # length longer than the data
        b"\x86\x02abc",  # data after the TLV
        b"\x86\x81\x05abcde",  # non-minimal length
        b"\x86\x84\x00\x00\x00\x01x",  # length form BSP never uses
        b"\x86\x08" + bytes(8),  # MAC but no ciphertext
        b"\x86\x0c" + bytes(12),  # ciphertext not a multiple of 16
        bytes([0x86, 0x82, 0x04, 0x00]) + bytes(1024),  # over 1020 bytes
        "not bytes",
        None,
    ],
)
def test_receiver_rejects_malformed_segments_with_bsp_error_only(segment: object) -> None:
    with pytest.raises(BspError):
        BspReceiver(KEYS).verify_and_decrypt(segment)  # type: ignore[arg-type]
    with pytest.raises(BspError):
        BspReceiver(KEYS).verify_mac_only(segment)  # type: ignore[arg-type]


def test_bsp_error_is_a_value_error() -> None:
    assert issubclass(BspError, ValueError)


def test_oversized_segments_accepted_only_when_the_receiver_allows_them() -> None:
    # Hand-built 1036-byte segment (1008 plaintext bytes), as osmo-smdpp produces.
    segment = _forge(KEYS, 0x86, bytes(1008) + b"\x80" + bytes(15))
    assert len(segment) == 1036
    with pytest.raises(BspError):
        BspReceiver(KEYS).verify_and_decrypt(segment)
    assert BspReceiver(KEYS, max_segment_size=None).verify_and_decrypt(segment) == bytes(1008)


def test_sender_and_receiver_repr_do_not_show_keys() -> None:
    for obj in (BspSender(KEYS), BspReceiver(KEYS)):
        assert KEYS.s_enc.hex() not in repr(obj) and "0001020304" not in repr(obj)
