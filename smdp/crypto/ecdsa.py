"""ECDSA in the form SGP.22 uses it (SGP.22 section 2.6, security: signature format and curves).

Every RSP signature (euiccSignature1/2, serverSignature1, smdpSignature2, the
InitialiseSecureChannel smdpSign, euiccSignPIR, notification signatures) is ECDSA with SHA-256 on
NIST P-256 or brainpoolP256r1, and is carried not as the X.509/DER ``ECDSA-Sig-Value`` but in the
"plain" format that GlobalPlatform Card Specification Amendment E refers to (BSI TR-03111 section
5.2.2): the big-endian integers r and s, each left-padded to the byte length of the group order,
concatenated (64 bytes for the 256-bit curves). pySim's ``x509_cert.ecdsa_sign`` and osmo-smdpp's
``ecdsa_tr03111_to_dss`` convert the same way.
"""

from __future__ import annotations

import enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "Curve",
    "der_to_raw",
    "generate_private_key",
    "private_key_from_bytes",
    "private_key_to_bytes",
    "public_key_from_bytes",
    "public_key_to_bytes",
    "raw_to_der",
    "sign",
    "verify",
]

# Field / order size in bytes of both SGP.22 curves.
_SIZE = 32

# Group orders, needed to reject out-of-range r or s before OpenSSL sees them
# (FIPS 186-4 D.1.2.3 for P-256; RFC 5639 section 3.4 for brainpoolP256r1).
_ORDER = {
    "nist": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "brainpool": 0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
}


class Curve(enum.Enum):
    """The two curves SGP.22 v2.x allows for RSP keys and certificates."""

    NIST_P256 = "nist"
    BRAINPOOL_P256R1 = "brainpool"

    @property
    def ec_curve(self) -> ec.EllipticCurve:
        """The ``cryptography`` curve instance."""
        if self is Curve.NIST_P256:
            return ec.SECP256R1()
        return ec.BrainpoolP256R1()

    @property
    def order(self) -> int:
        """The order n of the base point."""
        return _ORDER[self.value]

    @classmethod
    def of(
        cls, key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey | object
    ) -> Curve:
        """The curve of an EC key (public or private); ValueError for any other key or curve."""
        if not isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
            raise ValueError(f"not an EC key: {type(key).__name__}")
        curve = key.curve
        if isinstance(curve, ec.SECP256R1):
            return cls.NIST_P256
        if isinstance(curve, ec.BrainpoolP256R1):
            return cls.BRAINPOOL_P256R1
        raise ValueError(f"curve {getattr(curve, 'name', curve)!r} is not allowed by SGP.22")


def generate_private_key(curve: Curve) -> ec.EllipticCurvePrivateKey:
    """A fresh private key on ``curve`` (e.g. a one-time key otSK.DP.ECKA)."""
    return ec.generate_private_key(curve.ec_curve)


def private_key_to_bytes(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The private scalar d as 32 big-endian bytes (for sealing a one-time key at rest)."""
    Curve.of(private_key)
    return private_key.private_numbers().private_value.to_bytes(_SIZE, "big")


def private_key_from_bytes(curve: Curve, data: bytes) -> ec.EllipticCurvePrivateKey:
    """Inverse of :func:`private_key_to_bytes`; ValueError unless 32 bytes with 0 < d < n."""
    if len(data) != _SIZE:
        raise ValueError(f"private key must be {_SIZE} bytes")
    d = int.from_bytes(data, "big")
    if not 0 < d < curve.order:
        raise ValueError("private scalar out of range")
    return ec.derive_private_key(d, curve.ec_curve)


def public_key_to_bytes(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed point 0x04 || X || Y (65 bytes), as in smdpOtpk / euiccOtpk."""
    Curve.of(public_key)
    return public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def public_key_from_bytes(curve: Curve, data: bytes) -> ec.EllipticCurvePublicKey:
    """Parse an uncompressed point on ``curve``; ValueError if malformed or not on the curve.

    SGP.22 carries one-time public keys uncompressed only, so compressed points are refused too.
    """
    if len(data) != 1 + 2 * _SIZE or data[0] != 0x04:
        raise ValueError("public key must be an uncompressed point: 0x04 || X || Y, 65 bytes")
    # from_encoded_point checks that the point is on the curve (and not the identity).
    return ec.EllipticCurvePublicKey.from_encoded_point(curve.ec_curve, bytes(data))


def raw_to_der(sig: bytes) -> bytes:
    """Plain r || s (equal halves) to DER ECDSA-Sig-Value; ValueError if not splittable."""
    if not sig or len(sig) % 2:
        raise ValueError("plain ECDSA signature must be two equal non-empty halves")
    half = len(sig) // 2
    r = int.from_bytes(sig[:half], "big")
    s = int.from_bytes(sig[half:], "big")
    return encode_dss_signature(r, s)


def der_to_raw(sig: bytes, size: int = _SIZE) -> bytes:
    """DER ECDSA-Sig-Value to plain r || s, ``size`` bytes each; ValueError if malformed/too big."""
    r, s = decode_dss_signature(sig)
    if r < 0 or s < 0:
        raise ValueError("negative r or s")
    try:
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    except OverflowError:
        raise ValueError(f"r or s does not fit in {size} bytes") from None


def sign(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-SHA256 over ``data``, returned as the 64-byte plain r || s SGP.22 transmits."""
    Curve.of(private_key)
    der = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    return der_to_raw(der, _SIZE)


def verify(public_key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> None:
    """Verify a plain r || s ECDSA-SHA256 signature; raises InvalidSignature if it does not verify.

    A malformed signature (wrong length, r or s zero or not below the group order) is just as
    invalid and raises InvalidSignature too, so callers map one exception to one SGP.22 error.
    A key on a curve SGP.22 does not allow is a caller bug and raises ValueError.
    """
    curve = Curve.of(public_key)
    if not isinstance(signature, (bytes, bytearray, memoryview)) or len(signature) != 2 * _SIZE:
        raise InvalidSignature("plain ECDSA signature must be 64 bytes")
    r = int.from_bytes(signature[:_SIZE], "big")
    s = int.from_bytes(signature[_SIZE:], "big")
    if not (0 < r < curve.order and 0 < s < curve.order):
        raise InvalidSignature("r or s out of range")
    # public_key.verify raises InvalidSignature itself on mismatch.
    public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
