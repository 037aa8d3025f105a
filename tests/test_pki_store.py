"""Loading PKI manifests (smdp.pki.store): what loads, and the errors for what must not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from smdp.crypto.ecdsa import Curve
from smdp.pki.issue import init_pki
from smdp.pki.store import (
    PkiConfigError,
    load_certificate,
    load_euicc_credentials,
    load_private_key,
    load_server_credentials,
)
from smdp.pki.verify import subject_key_identifier


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pristine")
    init_pki(directory)
    return directory


@pytest.fixture
def pki(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the generated PKI that a test may edit."""
    return Path(shutil.copytree(pristine, tmp_path / "pki"))


def edit_manifest(pki: Path, old: str, new: str, count: int = 1) -> Path:
    manifest = pki / "pki.toml"
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new, count))
    return manifest


def test_load_server_credentials_indexes_chains_by_ci_pkid(pki: Path) -> None:
    creds = load_server_credentials(pki / "pki.toml")
    assert creds.smdp_oid == "2.999.10"
    assert creds.tls_cert_path == pki / "tls" / "dptls.crt.pem"
    assert creds.tls_key_path == pki / "tls" / "dptls.key.pem"
    assert creds.tls_ca_cert_path == pki / "tls" / "ci.crt.pem"
    assert creds.ci_pkids == [subject_key_identifier(c) for c in creds.trusted_cis]
    for chain in creds.chains:
        assert creds.chain_for(chain.ci_pkid) is chain
        assert chain.dpauth_key.public_key() == chain.dpauth_cert.public_key()
    assert creds.chain_for(b"\x00" * 20) is None


def test_credentials_repr_does_not_show_private_keys(pki: Path) -> None:
    creds = load_server_credentials(pki / "pki.toml")
    assert "dpauth_key" not in repr(creds.chains[0])
    assert "euicc_key" not in repr(load_euicc_credentials(pki / "pki.toml", "nist"))


def test_smdp_oid_defaults_to_dpauth_subject_alt_name(pki: Path) -> None:
    manifest = edit_manifest(pki, 'smdp_oid = "2.999.10"\n', "")
    assert load_server_credentials(manifest).smdp_oid == "2.999.10"


def test_smdp_oid_must_match_dpauth_certificates(pki: Path) -> None:
    manifest = edit_manifest(pki, 'smdp_oid = "2.999.10"', 'smdp_oid = "2.999.11"')
    with pytest.raises(PkiConfigError, match=r"2\.999\.11"):
        load_server_credentials(manifest)


def test_missing_file_is_named_in_the_error(pki: Path) -> None:
    (pki / "nist" / "dppb.key.pem").unlink()
    with pytest.raises(PkiConfigError, match=r"dppb\.key\.pem"):
        load_server_credentials(pki / "pki.toml")


def test_missing_manifest_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(PkiConfigError, match="not found"):
        load_server_credentials(tmp_path / "nope.toml")


def test_unreadable_pem_key_is_a_config_error(pki: Path) -> None:
    (pki / "nist" / "dpauth.key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(PkiConfigError, match=r"dpauth\.key\.pem"):
        load_server_credentials(pki / "pki.toml")


def test_unparsable_certificate_is_a_config_error(pki: Path) -> None:
    (pki / "brainpool" / "ci.crt.der").write_bytes(b"\x30\x03\x02\x01\x00")
    with pytest.raises(PkiConfigError, match=r"ci\.crt\.der"):
        load_server_credentials(pki / "pki.toml")


def test_key_not_matching_its_certificate_is_a_config_error(pki: Path) -> None:
    manifest = edit_manifest(
        pki, 'dpauth_key = "nist/dpauth.key.pem"', 'dpauth_key = "nist/dppb.key.pem"'
    )
    with pytest.raises(PkiConfigError, match="does not match"):
        load_server_credentials(manifest)


def test_tls_key_not_matching_tls_certificate_is_a_config_error(pki: Path) -> None:
    manifest = edit_manifest(
        pki, 'tls_key = "tls/dptls.key.pem"', 'tls_key = "nist/dpauth.key.pem"'
    )
    with pytest.raises(PkiConfigError, match="does not match"):
        load_server_credentials(manifest)


def test_dp_certificate_of_another_ci_is_a_config_error(pki: Path) -> None:
    manifest = edit_manifest(pki, 'ci_cert = "nist/ci.crt.der"', 'ci_cert = "brainpool/ci.crt.der"')
    with pytest.raises(PkiConfigError, match="not signed by the CI"):
        load_server_credentials(manifest)


def test_dpauth_and_dppb_swapped_is_a_config_error(pki: Path) -> None:
    text = (pki / "pki.toml").read_text()
    text = text.replace('dpauth_cert = "nist/dpauth.crt.der"', 'dpauth_cert = "nist/dppb.crt.der"')
    text = text.replace('dpauth_key = "nist/dpauth.key.pem"', 'dpauth_key = "nist/dppb.key.pem"')
    (pki / "pki.toml").write_text(text)
    with pytest.raises(PkiConfigError, match="id-rspRole-dp-auth"):
        load_server_credentials(pki / "pki.toml")


def test_non_ci_certificate_as_ci_is_a_config_error(pki: Path) -> None:
    manifest = edit_manifest(pki, 'ci_cert = "nist/ci.crt.der"', 'ci_cert = "nist/eum.crt.der"')
    with pytest.raises(PkiConfigError, match="id-rspRole-ci"):
        load_server_credentials(manifest)


def test_unknown_key_is_a_config_error(pki: Path) -> None:
    manifest = edit_manifest(pki, "dppb_key =", "dppb_kye =")
    with pytest.raises(PkiConfigError, match="dppb_kye"):
        load_server_credentials(manifest)


def test_invalid_toml_is_a_config_error(pki: Path) -> None:
    (pki / "pki.toml").write_text("[server\n")
    with pytest.raises(PkiConfigError, match="TOML"):
        load_server_credentials(pki / "pki.toml")


def test_pki_config_error_is_a_value_error() -> None:
    assert issubclass(PkiConfigError, ValueError)


def test_certificates_load_as_pem_or_der_and_keys_as_pkcs8_or_sec1(pki: Path) -> None:
    ci = load_certificate(pki / "nist" / "ci.crt.der")
    (pki / "nist" / "ci.crt.pem").write_bytes(ci.public_bytes(serialization.Encoding.PEM))
    key = load_private_key(pki / "nist" / "dpauth.key.pem")
    sec1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    (pki / "nist" / "dpauth.sec1.pem").write_bytes(sec1)
    text = (pki / "pki.toml").read_text()
    text = text.replace('ci_cert = "nist/ci.crt.der"', 'ci_cert = "nist/ci.crt.pem"')
    text = text.replace('dpauth_key = "nist/dpauth.key.pem"', 'dpauth_key = "nist/dpauth.sec1.pem"')
    (pki / "pki.toml").write_text(text)
    creds = load_server_credentials(pki / "pki.toml")
    assert creds.chains[0].ci == ci
    assert load_euicc_credentials(pki / "pki.toml", "nist").ci_certs == [ci]


def test_absolute_paths_are_accepted(pki: Path, tmp_path: Path) -> None:
    text = (pki / "pki.toml").read_text()
    for relative in sorted(
        {p.relative_to(pki).as_posix() for p in pki.rglob("*.*") if p.suffix in (".der", ".pem")}
    ):
        text = text.replace(f'"{relative}"', f'"{(pki / relative).as_posix()}"')
    moved = tmp_path / "elsewhere" / "pki.toml"
    moved.parent.mkdir()
    moved.write_text(text)
    assert load_server_credentials(moved).tls_key_path == pki / "tls" / "dptls.key.pem"
    assert load_euicc_credentials(moved, "brainpool").curve is Curve.BRAINPOOL_P256R1


def test_non_pem_private_key_is_a_config_error(pki: Path) -> None:
    key = load_private_key(pki / "nist" / "euicc.key.pem")
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (pki / "nist" / "euicc.key.pem").write_bytes(der)
    with pytest.raises(PkiConfigError, match=r"euicc\.key\.pem"):
        load_euicc_credentials(pki / "pki.toml", "nist")


def test_load_euicc_credentials_by_curve(pki: Path) -> None:
    for curve in Curve:
        creds = load_euicc_credentials(pki / "pki.toml", curve.value)
        assert creds.curve is curve
        assert Curve.of(creds.euicc_key) is curve
        assert len(creds.eid) == 32
        assert creds.euicc_key.public_key() == creds.euicc_cert.public_key()
    assert load_euicc_credentials(pki / "pki.toml", Curve.NIST_P256).curve is Curve.NIST_P256


def test_load_euicc_credentials_accepts_a_list_of_cis(pki: Path) -> None:
    manifest = edit_manifest(
        pki,
        'ci_cert = "nist/ci.crt.der"\n\n[[euicc]]',
        'ci_cert = ["nist/ci.crt.der", "brainpool/ci.crt.der"]\n\n[[euicc]]',
    )
    creds = load_euicc_credentials(manifest, "nist")
    assert [Curve.of(c.public_key()) for c in creds.ci_certs] == [
        Curve.NIST_P256,
        Curve.BRAINPOOL_P256R1,
    ]


def test_load_euicc_credentials_rejects_unknown_or_absent_curve(pki: Path) -> None:
    with pytest.raises(PkiConfigError, match="unknown curve"):
        load_euicc_credentials(pki / "pki.toml", "secp384r1")
    manifest = edit_manifest(pki, 'curve = "brainpool"', 'curve = "nist"')
    with pytest.raises(PkiConfigError, match="more than one"):
        load_euicc_credentials(manifest, "nist")
    with pytest.raises(PkiConfigError, match="no \\[\\[euicc\\]\\] entry"):
        load_euicc_credentials(manifest, "brainpool")


def test_euicc_entry_with_key_of_other_certificate_is_a_config_error(pki: Path) -> None:
    manifest = edit_manifest(
        pki, 'euicc_key = "nist/euicc.key.pem"', 'euicc_key = "nist/eum.key.pem"'
    )
    with pytest.raises(PkiConfigError, match="does not match"):
        load_euicc_credentials(manifest, "nist")
