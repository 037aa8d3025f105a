"""The GSMA SGP.26 test certificates pass (and fail) SGP.22 4.5.2.2 verification as they should."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from smdp.crypto.ecdsa import Curve
from smdp.pki.store import (
    load_certificate,
    load_euicc_credentials,
    load_server_credentials,
)
from smdp.pki.tls import server_ssl_context
from smdp.pki.verify import (
    EumCertificateExpired,
    ServerCertificateExpired,
    permitted_eins,
    smdp_oid_of,
    subject_key_identifier,
    verify_euicc_chain,
    verify_server_certificate,
)
from tests.conftest import SGP26_DIR, sgp26_example_manifest

SGP26 = SGP26_DIR
pytestmark = pytest.mark.skipif(
    not (SGP26 / "CertificateIssuer").is_dir(),
    reason=f"GSMA SGP.26 test certificates not found at {SGP26}",
)

SGP26_EID = "89049032123451234512345678901235"
# Instants inside every SGP.26 validity period checked below (DP certs end 2030-03-30;
# the re-issued DPtls is valid 2026-07-21 .. 2027-02-06).
WHILE_VALID = datetime(2026, 12, 1, tzinfo=UTC)
AFTER_EUM = datetime(2054, 3, 25, tzinfo=UTC)
AFTER_DP = datetime(2030, 3, 31, tzinfo=UTC)
CURVES = {"NIST": Curve.NIST_P256, "BRP": Curve.BRAINPOOL_P256R1}
CI_SKI = {
    "NIST": "f54172bdf98a95d65cbeb88a38a1c11d800a85c3",
    "BRP": "c0bc70ba36929d43b467ff57570530e57ab8fcd8",
}


def cert(relative: str) -> x509.Certificate:
    return load_certificate(SGP26 / relative)


@pytest.fixture(params=sorted(CURVES))
def suffix(request: pytest.FixtureRequest) -> str:
    return request.param


def test_sgp26_ci_key_identifiers(suffix: str) -> None:
    assert (
        subject_key_identifier(cert(f"CertificateIssuer/CERT_CI_ECDSA_{suffix}.der")).hex()
        == CI_SKI[suffix]
    )


def test_sgp26_euicc_chain_verifies(suffix: str) -> None:
    ci = cert(f"CertificateIssuer/CERT_CI_ECDSA_{suffix}.der")
    identity = verify_euicc_chain(
        cert(f"eUICC/CERT_EUICC_ECDSA_{suffix}.der"),
        cert(f"EUM/CERT_EUM_ECDSA_{suffix}.der"),
        [ci],
        WHILE_VALID,
    )
    assert identity.eid == SGP26_EID
    assert identity.curve is CURVES[suffix]
    assert identity.ci == ci


def test_sgp26_eum_permits_ein_89049032(suffix: str) -> None:
    assert permitted_eins(cert(f"EUM/CERT_EUM_ECDSA_{suffix}.der")) == ["89049032"]


def test_sgp26_euicc_chain_rejected_once_eum_expired(suffix: str) -> None:
    with pytest.raises(EumCertificateExpired):
        verify_euicc_chain(
            cert(f"eUICC/CERT_EUICC_ECDSA_{suffix}.der"),
            cert(f"EUM/CERT_EUM_ECDSA_{suffix}.der"),
            [cert(f"CertificateIssuer/CERT_CI_ECDSA_{suffix}.der")],
            AFTER_EUM,
        )


@pytest.mark.parametrize(("name", "oid"), [("SM_DP", "2.999.10"), ("SM_DP2", "2.999.12")])
def test_sgp26_dp_certificates_verify_under_ci(suffix: str, name: str, oid: str) -> None:
    ci = cert(f"CertificateIssuer/CERT_CI_ECDSA_{suffix}.der")
    dpauth = cert(f"DPauth/CERT_S_{name}auth_ECDSA_{suffix}.der")
    dppb = cert(f"DPpb/CERT_S_{name}pb_ECDSA_{suffix}.der")
    assert verify_server_certificate(dpauth, [ci], WHILE_VALID, role="dp-auth") == ci
    assert verify_server_certificate(dppb, [ci], WHILE_VALID, role="dp-pb") == ci
    assert smdp_oid_of(dpauth) == oid
    with pytest.raises(ServerCertificateExpired):
        verify_server_certificate(dpauth, [ci], AFTER_DP, role="dp-auth")


def test_sgp26_dptls_verifies_as_dp_tls(suffix: str) -> None:
    ci = cert(f"CertificateIssuer/CERT_CI_ECDSA_{suffix}.der")
    tls = cert(f"DPtls/CERT_S_SM_DP_VARO_TLS_{suffix}.der")
    assert verify_server_certificate(tls, [ci], WHILE_VALID, role="dp-tls") == ci


def test_sgp26_example_manifest_loads_server_credentials(tmp_path: Path) -> None:
    creds = load_server_credentials(sgp26_example_manifest(tmp_path))
    assert creds.smdp_oid == "2.999.10"
    assert [pkid.hex() for pkid in creds.ci_pkids] == [CI_SKI["NIST"], CI_SKI["BRP"]]
    assert [c.curve for c in creds.chains] == [Curve.NIST_P256, Curve.BRAINPOOL_P256R1]
    # The SGP.26 DPtls certificate is DER; the TLS context must still load it.
    server_ssl_context(creds)


def test_sgp26_example_manifest_loads_euicc_credentials(suffix: str, tmp_path: Path) -> None:
    creds = load_euicc_credentials(sgp26_example_manifest(tmp_path), CURVES[suffix].value)
    assert creds.eid == SGP26_EID
    assert creds.curve is CURVES[suffix]
    identity = verify_euicc_chain(creds.euicc_cert, creds.eum_cert, creds.ci_certs, WHILE_VALID)
    assert identity.public_key == creds.euicc_key.public_key()
