"""MILENAGE, the 3GPP example authentication and key agreement algorithm set (3GPP TS 35.206):
OPc derivation (section 4.1) and the functions f1, f1*, f2, f3, f4, f5, f5*.

The SM-DP+ only needs OPc, to personalize a profile from an operator's OP (so that the profile
and the operator's core agree); f1..f5* are here so that tests can check a generated Ki/OPc the
way a network does. Known answers: 3GPP TS 35.207/35.208 test sets (tests/test_crypto_milenage.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["AkaVector", "compute_opc", "milenage"]

# TS 35.206 section 4.1: rotations r1..r5 (bits) and constants c1..c5 (128-bit, last byte only).
_R = (64, 0, 32, 64, 96)
_C = (0, 1, 2, 4, 8)


def _aes(key: bytes, block: bytes) -> bytes:
    # One 16-byte block: ECB is exactly the raw block cipher E_K that TS 35.206 specifies.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(block: bytes, bits: int) -> bytes:
    value = int.from_bytes(block, "big")
    bits %= 128
    value = ((value << bits) | (value >> (128 - bits))) & ((1 << 128) - 1)
    return value.to_bytes(16, "big")


def _check(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"MILENAGE {name} must be {length} bytes, got {len(value)}")


def compute_opc(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP) (TS 35.206 section 4.1); ``k`` and ``op`` are 16 bytes."""
    _check("K", k, 16)
    _check("OP", op, 16)
    return _xor(_aes(k, op), op)


@dataclass(frozen=True)
class AkaVector:
    """Outputs of MILENAGE for one RAND/SQN/AMF (TS 35.206 section 4.1)."""

    mac_a: bytes  # f1
    mac_s: bytes  # f1*
    res: bytes  # f2
    ck: bytes  # f3
    ik: bytes  # f4
    ak: bytes  # f5
    ak_s: bytes  # f5*


def milenage(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> AkaVector:
    """All MILENAGE functions for one challenge."""
    _check("K", k, 16)
    _check("OPc", opc, 16)
    _check("RAND", rand, 16)
    _check("SQN", sqn, 6)
    _check("AMF", amf, 2)
    temp = _aes(k, _xor(rand, opc))
    in1 = sqn + amf + sqn + amf

    # OUT1 mixes TEMP with the rotated IN1; OUT2..OUT5 use TEMP alone (c1 is zero).
    out1 = _xor(_aes(k, _xor(temp, _rot(_xor(in1, opc), _R[0]))), opc)
    out2, out3, out4, out5 = (
        _xor(_aes(k, _xor(_rot(_xor(temp, opc), _R[i]), bytes(15) + bytes([_C[i]]))), opc) for i in range(1, 5)
    )
    return AkaVector(
        mac_a=out1[:8], mac_s=out1[8:], res=out2[8:], ck=out3, ik=out4, ak=out2[:6], ak_s=out5[:6]
    )
