"""SGP.22 ECDSA: plain r||s signatures on NIST P-256 and brainpoolP256r1 (smdp.crypto.ecdsa)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from smdp.crypto.ecdsa import (
    Curve,
    der_to_raw,
    generate_private_key,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    raw_to_der,
    sign,
    verify,
)
from tests.conftest import SGP26_DIR

CURVES = [Curve.NIST_P256, Curve.BRAINPOOL_P256R1]
SGP26 = SGP26_DIR


def _sgp26(rel: str) -> Path:
    path = SGP26 / rel
    if not path.exists():
        pytest.skip(f"GSMA SGP.26 test certificates not found at {path}")
    return path


@pytest.mark.parametrize("curve", CURVES)
def test_sign_produces_64_byte_plain_signature_that_verifies(curve: Curve) -> None:
    key = generate_private_key(curve)
    sig = sign(key, b"euiccSigned1")
    assert len(sig) == 64
    verify(key.public_key(), b"euiccSigned1", sig)


@pytest.mark.parametrize("curve", CURVES)
def test_plain_signature_is_r_then_s_as_openssl_sees_them(curve: Curve) -> None:
    key = generate_private_key(curve)
    sig = sign(key, b"data")
    # An independent check of the layout: OpenSSL verifies the DER made from the halves.
    key.public_key().verify(raw_to_der(sig), b"data", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("curve", CURVES)
def test_verify_rejects_other_data_and_other_key(curve: Curve) -> None:
    key = generate_private_key(curve)
    sig = sign(key, b"data")
    with pytest.raises(InvalidSignature):
        verify(key.public_key(), b"datA", sig)
    with pytest.raises(InvalidSignature):
        verify(generate_private_key(curve).public_key(), b"data", sig)


@pytest.mark.parametrize("curve", CURVES)
def test_verify_raises_invalid_signature_for_garbage_of_every_length(curve: Curve) -> None:
    pub = generate_private_key(curve).public_key()
    for n in range(0, 140):
        for candidate in (bytes(n), b"\xff" * n, os.urandom(n)):
            with pytest.raises(InvalidSignature):
                verify(pub, b"data", candidate)


@pytest.mark.parametrize("curve", CURVES)
def test_verify_rejects_r_or_s_zero_or_not_below_order(curve: Curve) -> None:
    key = generate_private_key(curve)
    good = sign(key, b"data")
    r, s = good[:32], good[32:]
    n = curve.order
    bad_values = [0, n, n + 1, 2**256 - 1]
    for bad in bad_values:
        b = bad.to_bytes(32, "big")
        for sig in (b + s, r + b):
            with pytest.raises(InvalidSignature):
                verify(key.public_key(), b"data", sig)


@pytest.mark.parametrize("curve", CURVES)
def test_verify_rejects_der_signature_passed_as_plain(curve: Curve) -> None:
    key = generate_private_key(curve)
    der = raw_to_der(sign(key, b"data"))
    with pytest.raises(InvalidSignature):
        verify(key.public_key(), b"data", der)


@pytest.mark.parametrize("curve", CURVES)
def test_curve_order_constants_match_openssl(curve: Curve) -> None:
    # OpenSSL accepts a private scalar up to n - 1 and refuses n: so our n is the group order.
    ec.derive_private_key(curve.order - 1, curve.ec_curve)
    with pytest.raises(ValueError):
        ec.derive_private_key(curve.order, curve.ec_curve)


def test_raw_der_round_trip_keeps_leading_zero_bytes() -> None:
    raw = bytes(31) + b"\x01" + b"\x00\x80" + bytes(29) + b"\x7f"
    assert der_to_raw(raw_to_der(raw)) == raw
    key = generate_private_key(Curve.NIST_P256)
    der = key.sign(b"x", ec.ECDSA(hashes.SHA256()))
    assert raw_to_der(der_to_raw(der)) == der


def test_raw_to_der_and_der_to_raw_reject_malformed_input() -> None:
    with pytest.raises(ValueError):
        raw_to_der(b"")
    with pytest.raises(ValueError):
        raw_to_der(bytes(63))
    with pytest.raises(ValueError):
        der_to_raw(b"\x30\x00garbage")
    with pytest.raises(ValueError):
        der_to_raw(raw_to_der(b"\x01" * 66))  # 33-byte integers do not fit 32


@pytest.mark.parametrize("curve", CURVES)
def test_public_key_bytes_round_trip_uncompressed(curve: Curve) -> None:
    pub = generate_private_key(curve).public_key()
    data = public_key_to_bytes(pub)
    assert len(data) == 65 and data[0] == 0x04
    assert public_key_to_bytes(public_key_from_bytes(curve, data)) == data


@pytest.mark.parametrize("curve", CURVES)
def test_public_key_from_bytes_rejects_invalid_points(curve: Curve) -> None:
    data = bytearray(public_key_to_bytes(generate_private_key(curve).public_key()))
    off_curve = bytes(data[:-1]) + bytes([data[-1] ^ 1])
    compressed = bytes([0x02 + (data[-1] & 1)]) + bytes(data[1:33])
    for bad in (off_curve, compressed, bytes(data[:-1]), b"", bytes(65), b"\x04" + bytes(64)):
        with pytest.raises(ValueError):
            public_key_from_bytes(curve, bad)


def test_public_key_from_bytes_rejects_point_of_the_other_curve() -> None:
    nist_point = public_key_to_bytes(generate_private_key(Curve.NIST_P256).public_key())
    with pytest.raises(ValueError):
        public_key_from_bytes(Curve.BRAINPOOL_P256R1, nist_point)


def test_curve_of_names_both_sgp22_curves_and_refuses_others() -> None:
    assert Curve.of(generate_private_key(Curve.NIST_P256)) is Curve.NIST_P256
    assert Curve.of(generate_private_key(Curve.BRAINPOOL_P256R1).public_key()) is (
        Curve.BRAINPOOL_P256R1
    )
    with pytest.raises(ValueError):
        Curve.of(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError):
        Curve.of(ed25519.Ed25519PrivateKey.generate())
    assert isinstance(Curve.NIST_P256.ec_curve, ec.SECP256R1)
    assert isinstance(Curve.BRAINPOOL_P256R1.ec_curve, ec.BrainpoolP256R1)


@pytest.mark.parametrize(
    ("issuer", "subject"),
    [
        ("CertificateIssuer/CERT_CI_ECDSA_NIST.der", "DPauth/CERT_S_SM_DPauth_ECDSA_NIST.der"),
        ("CertificateIssuer/CERT_CI_ECDSA_NIST.der", "DPpb/CERT_S_SM_DPpb_ECDSA_NIST.der"),
        ("CertificateIssuer/CERT_CI_ECDSA_NIST.der", "EUM/CERT_EUM_ECDSA_NIST.der"),
        ("EUM/CERT_EUM_ECDSA_NIST.der", "eUICC/CERT_EUICC_ECDSA_NIST.der"),
        ("CertificateIssuer/CERT_CI_ECDSA_BRP.der", "DPauth/CERT_S_SM_DPauth_ECDSA_BRP.der"),
        ("CertificateIssuer/CERT_CI_ECDSA_BRP.der", "DPpb/CERT_S_SM_DPpb_ECDSA_BRP.der"),
        ("CertificateIssuer/CERT_CI_ECDSA_BRP.der", "EUM/CERT_EUM_ECDSA_BRP.der"),
        ("EUM/CERT_EUM_ECDSA_BRP.der", "eUICC/CERT_EUICC_ECDSA_BRP.der"),
    ],
)
def test_verify_accepts_signatures_made_by_the_gsma_sgp26_test_pki(
    issuer: str, subject: str
) -> None:
    # Known answer from an independent implementation: the SGP.26 certificates were signed by
    # the GSMA test CI / test EUM tooling. Their DER signatures, made plain r||s, must verify.
    ca = x509.load_der_x509_certificate(_sgp26(issuer).read_bytes())
    cert = x509.load_der_x509_certificate(_sgp26(subject).read_bytes())
    raw = der_to_raw(cert.signature)
    verify(ca.public_key(), cert.tbs_certificate_bytes, raw)  # type: ignore[arg-type]
    tampered = bytearray(cert.tbs_certificate_bytes)
    tampered[-1] ^= 1
    with pytest.raises(InvalidSignature):
        verify(ca.public_key(), bytes(tampered), raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", ["NIST", "BRP"])
def test_signature_with_sgp26_dpauth_key_verifies_against_its_certificate(suffix: str) -> None:
    key = load_pem_private_key(
        _sgp26(f"DPauth/SK_S_SM_DPauth_ECDSA_{suffix}.pem").read_bytes(), password=None
    )
    cert = x509.load_der_x509_certificate(
        _sgp26(f"DPauth/CERT_S_SM_DPauth_ECDSA_{suffix}.der").read_bytes()
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    sig = sign(key, b"serverSigned1")
    verify(cert.public_key(), b"serverSigned1", sig)  # type: ignore[arg-type]


@pytest.mark.parametrize("curve", CURVES)
def test_private_key_bytes_round_trip_and_range_checks(curve: Curve) -> None:
    key = generate_private_key(curve)
    data = private_key_to_bytes(key)
    assert len(data) == 32
    again = private_key_from_bytes(curve, data)
    assert public_key_to_bytes(again.public_key()) == public_key_to_bytes(key.public_key())
    for bad in (bytes(32), curve.order.to_bytes(32, "big"), b"\xff" * 32, data[:-1]):
        with pytest.raises(ValueError):
            private_key_from_bytes(curve, bad)
