"""Test PKI issuance (smdp.pki.issue): layout, file modes, and SGP.22 4.5.2.1 certificate profiles."""

from __future__ import annotations

import ipaddress
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smdp.crypto.ecdsa import Curve, generate_private_key
from smdp.pki.issue import DEFAULT_EIN, init_pki, issue_ci, write_private_key
from smdp.pki.roles import Role, has_role
from smdp.pki.store import (
    load_certificate,
    load_euicc_credentials,
    load_server_credentials,
)
from smdp.pki.verify import (
    permitted_eins,
    smdp_oid_of,
    verify_euicc_chain,
    verify_server_certificate,
)
from tests.conftest import SGP26_DIR

SGP26 = SGP26_DIR
PARTS = ("ci", "eum", "euicc", "dpauth", "dppb")
TLS_FILES = ("dptls.crt.pem", "dptls.key.pem", "ci.crt.pem")
GIVEN_EID = "89049032123451234512345678901235"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(
        directory,
        smdp_oid="2.999.42",
        tls_names=["smdp.test", "127.0.0.1", "::1"],
        eid=GIVEN_EID,
    )
    return directory


def now() -> datetime:
    # Certificates from init_pki are valid around the moment they were issued.
    return datetime.now(UTC)


def test_init_pki_writes_both_curves_tls_and_manifest(pki_dir: Path) -> None:
    for curve in Curve:
        for part in PARTS:
            assert (pki_dir / curve.value / f"{part}.crt.der").is_file()
            assert (pki_dir / curve.value / f"{part}.key.pem").is_file()
    for name in TLS_FILES:
        assert (pki_dir / "tls" / name).is_file()
    assert (pki_dir / "pki.toml").is_file()


def test_init_pki_private_keys_are_mode_0600(pki_dir: Path) -> None:
    keys = list(pki_dir.rglob("*.key.pem"))
    assert len(keys) == 2 * len(PARTS) + 1
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_write_private_key_is_0600_pkcs8_whatever_the_umask(tmp_path: Path) -> None:
    key = generate_private_key(Curve.NIST_P256)
    for umask in (0o000, 0o022, 0o077):
        path = tmp_path / f"k{umask:o}.key.pem"
        old = os.umask(umask)
        try:
            write_private_key(path, key)
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert not list(tmp_path.glob(".*.tmp"))


def test_init_pki_manifest_loads_and_every_chain_verifies(pki_dir: Path) -> None:
    server = load_server_credentials(pki_dir / "pki.toml")
    assert server.smdp_oid == "2.999.42"
    assert [c.curve for c in server.chains] == [Curve.NIST_P256, Curve.BRAINPOOL_P256R1]
    for curve in Curve:
        euicc = load_euicc_credentials(pki_dir / "pki.toml", curve.value)
        assert euicc.eid == GIVEN_EID
        identity = verify_euicc_chain(euicc.euicc_cert, euicc.eum_cert, server.trusted_cis, now())
        assert identity.curve is curve
        chain = server.chain_for(
            identity.ci.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        )
        assert chain is not None and chain.curve is curve
        assert (
            verify_server_certificate(chain.dpauth_cert, euicc.ci_certs, now(), role="dp-auth")
            == chain.ci
        )
        assert (
            verify_server_certificate(chain.dppb_cert, euicc.ci_certs, now(), role="dp-pb")
            == chain.ci
        )
        assert smdp_oid_of(chain.dpauth_cert) == "2.999.42"


def test_init_pki_tls_certificate_names_and_chain(pki_dir: Path) -> None:
    tls = load_certificate(pki_dir / "tls" / "dptls.crt.pem")
    ci = load_certificate(pki_dir / "nist" / "ci.crt.der")
    assert load_certificate(pki_dir / "tls" / "ci.crt.pem") == ci
    assert verify_server_certificate(tls, [ci], now(), role="dp-tls") == ci
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["smdp.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert [o.dotted_string for o in san.get_values_for_type(x509.RegisteredID)] == ["2.999.42"]


def test_init_pki_eum_permits_the_ein_of_the_given_eid(pki_dir: Path) -> None:
    for curve in Curve:
        assert permitted_eins(load_certificate(pki_dir / curve.value / "eum.crt.der")) == [
            GIVEN_EID[:8]
        ]


def test_init_pki_generates_valid_eid_inside_default_ein(tmp_path: Path) -> None:
    manifest = init_pki(tmp_path)
    eid = load_euicc_credentials(manifest, "nist").eid
    assert eid.startswith(DEFAULT_EIN)
    assert load_euicc_credentials(manifest, "brainpool").eid == eid
    server = load_server_credentials(manifest)
    assert server.smdp_oid == "2.999.10"
    san = load_certificate(server.tls_cert_path).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]


def test_init_pki_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    init_pki(tmp_path)
    before = (tmp_path / "nist" / "ci.crt.der").read_bytes()
    with pytest.raises(FileExistsError):
        init_pki(tmp_path)
    assert (tmp_path / "nist" / "ci.crt.der").read_bytes() == before
    init_pki(tmp_path, overwrite=True)
    assert (tmp_path / "nist" / "ci.crt.der").read_bytes() != before


def test_init_pki_refuses_when_any_single_file_exists(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "dptls.key.pem").write_text("precious")
    with pytest.raises(FileExistsError):
        init_pki(tmp_path)
    assert (tmp_path / "tls" / "dptls.key.pem").read_text() == "precious"
    assert not (tmp_path / "nist").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eid": GIVEN_EID[:-1] + "6"}, "not a valid EID"),
        ({"eid": GIVEN_EID, "ein": "89001012"}, "does not start with EIN"),
        ({"smdp_oid": "not-an-oid"}, None),
    ],
)
def test_init_pki_rejects_bad_arguments_before_writing(
    tmp_path: Path, kwargs: dict, message: str | None
) -> None:
    with pytest.raises(ValueError, match=message):
        init_pki(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_issued_certificates_carry_their_role(pki_dir: Path) -> None:
    roles = {
        "ci": Role.CI,
        "eum": Role.EUM,
        "euicc": Role.EUICC,
        "dpauth": Role.DP_AUTH,
        "dppb": Role.DP_PB,
    }
    for curve in Curve:
        for part, role in roles.items():
            cert = load_certificate(pki_dir / curve.value / f"{part}.crt.der")
            assert has_role(cert, role)
            assert [r for r in Role if has_role(cert, r)] == [role]
            assert (
                cert.signature_hash_algorithm is not None
                and cert.signature_hash_algorithm.name == "sha256"
            )


def test_issue_ci_rejects_key_on_other_curve() -> None:
    with pytest.raises(ValueError):
        issue_ci(Curve.NIST_P256, key=generate_private_key(Curve.BRAINPOOL_P256R1))


def _extension_profile(cert: x509.Certificate) -> set[tuple[str, bool]]:
    return {(type(ext.value).__name__, ext.critical) for ext in cert.extensions}


@pytest.mark.skipif(
    not SGP26.is_dir(), reason=f"GSMA SGP.26 test certificates not found at {SGP26}"
)
@pytest.mark.parametrize(
    ("part", "sgp26_file"),
    [
        ("nist/ci.crt.der", "CertificateIssuer/CERT_CI_ECDSA_NIST.der"),
        ("nist/eum.crt.der", "EUM/CERT_EUM_ECDSA_NIST.der"),
        ("nist/euicc.crt.der", "eUICC/CERT_EUICC_ECDSA_NIST.der"),
        ("nist/dpauth.crt.der", "DPauth/CERT_S_SM_DPauth_ECDSA_NIST.der"),
        ("nist/dppb.crt.der", "DPpb/CERT_S_SM_DPpb_ECDSA_NIST.der"),
        ("brainpool/eum.crt.der", "EUM/CERT_EUM_ECDSA_BRP.der"),
        ("tls/dptls.crt.pem", "DPtls/CERT_S_SM_DP_VARO_TLS_NIST.der"),
    ],
)
def test_issued_certificates_mirror_sgp26_extension_profile(
    pki_dir: Path, part: str, sgp26_file: str
) -> None:
    ours = load_certificate(pki_dir / part)
    theirs = load_certificate(SGP26 / sgp26_file)
    assert _extension_profile(ours) == _extension_profile(theirs)
    ours_ku = ours.extensions.get_extension_for_class(x509.KeyUsage).value
    theirs_ku = theirs.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ours_ku == theirs_ku


def test_private_key_files_load_as_pkcs8(pki_dir: Path) -> None:
    pem = (pki_dir / "nist" / "euicc.key.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    cert = load_certificate(pki_dir / "nist" / "euicc.crt.der")
    assert key.public_key() == cert.public_key()
