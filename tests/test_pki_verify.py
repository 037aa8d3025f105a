"""SGP.22 4.5.2.2 certificate verification against a PKI issued in memory by smdp.pki.issue.

The order of the checks, and so which error a certificate with several faults gets, follows the
error table of SGP.22 section 5.6.2: issuer (CI lookup), signature, validity, then profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from smdp.crypto.ecdsa import Curve, generate_private_key
from smdp.pki.eid import eid_check_digits
from smdp.pki.issue import (
    issue_ci,
    issue_dpauth,
    issue_dppb,
    issue_dptls,
    issue_euicc,
    issue_eum,
)
from smdp.pki.verify import (
    CertificateError,
    CiUnknown,
    EidOutOfRange,
    EuiccCertificateExpired,
    EuiccCertificateInvalid,
    EumCertificateExpired,
    EumCertificateInvalid,
    ServerCertificateExpired,
    ServerCertificateInvalid,
    authority_key_identifier,
    find_issuing_ci,
    parse_problem,
    permitted_eins,
    smdp_oid_of,
    subject_key_identifier,
    verify_euicc_chain,
    verify_server_certificate,
)

EIN = "89049032"
BODY = EIN + "1234512345123456789012"
EID = BODY + eid_check_digits(BODY)
OTHER_BODY = "89001012" + "0123412340123456789012"
OTHER_EID = OTHER_BODY + eid_check_digits(OTHER_BODY)

# All certificates below are issued around T0 with explicit validity, and checked at explicit
# instants: no test depends on the wall clock.
T0 = datetime(2030, 6, 1, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=3650)
FAR_AHEAD = T0 + timedelta(days=3650)
VALID = {"not_before": LONG_AGO, "not_after": FAR_AHEAD}


@dataclass
class Pki:
    curve: Curve
    ci: x509.Certificate
    ci_key: ec.EllipticCurvePrivateKey
    eum: x509.Certificate
    eum_key: ec.EllipticCurvePrivateKey
    euicc: x509.Certificate
    euicc_key: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module", params=list(Curve), ids=lambda c: c.value)
def pki(request: pytest.FixtureRequest) -> Pki:
    curve = request.param
    ci, ci_key = issue_ci(curve, **VALID)
    eum, eum_key = issue_eum(ci, ci_key, eins=[EIN], curve=curve, **VALID)
    euicc, euicc_key = issue_euicc(eum, eum_key, eid=EID, curve=curve, **VALID)
    return Pki(curve, ci, ci_key, eum, eum_key, euicc, euicc_key)


def tampered(cert: x509.Certificate) -> x509.Certificate:
    """The same certificate with the last byte of its signature changed (still valid DER)."""
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return x509.load_der_x509_certificate(bytes(der))


def reissued(
    cert: x509.Certificate,
    signing_key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Name | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    drop: tuple[x509.ObjectIdentifier, ...] = (),
    add: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    not_after: datetime | None = None,
) -> x509.Certificate:
    """``cert`` rebuilt with other issuer / key / validity / extensions and signed by ``signing_key``
    (the result round-trips through DER, as a certificate received on the wire does)."""
    builder = (
        x509.CertificateBuilder()
        .issuer_name(issuer if issuer is not None else cert.issuer)
        .subject_name(cert.subject)
        .public_key(key.public_key() if key is not None else cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(not_after if not_after is not None else cert.not_valid_after_utc)
    )
    for ext in cert.extensions:
        if ext.oid not in drop:
            builder = builder.add_extension(ext.value, critical=ext.critical)
    for value, critical in add:
        builder = builder.add_extension(value, critical=critical)
    der = builder.sign(signing_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(der)


# keyUsage whose extnValue is a NULL instead of a BIT STRING: the certificate loads, but cryptography
# raises ValueError when its extensions are first read.
MALFORMED_KEY_USAGE = (x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x05\x00"), True)
MALFORMED_AKI = (x509.UnrecognizedExtension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, b"\x04\x01\x00"), False)


def self_signed_eum(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An EUM certificate with the EUM profile, signed by its own key, issuer = subject, AKI = own SKI."""
    key = generate_private_key(pki.curve)
    own_aki = x509.AuthorityKeyIdentifier(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest, None, None
    )
    eum = reissued(
        pki.eum,
        key,
        issuer=pki.eum.subject,
        key=key,
        drop=(ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER),
        add=((x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False), (own_aki, False)),
    )
    return eum, key


# --- eUICC chain ------------------------------------------------------------------------------


def test_verify_euicc_chain_accepts_generated_chain(pki: Pki) -> None:
    identity = verify_euicc_chain(pki.euicc, pki.eum, [pki.ci], T0)
    assert identity.eid == EID
    assert identity.curve is pki.curve
    assert identity.ci == pki.ci
    assert identity.public_key == pki.euicc_key.public_key()


def test_verify_euicc_chain_picks_the_issuing_ci_among_several(pki: Pki) -> None:
    other_ci, _ = issue_ci(pki.curve, **VALID)
    identity = verify_euicc_chain(pki.euicc, pki.eum, [other_ci, pki.ci], T0)
    assert identity.ci == pki.ci


def test_verify_euicc_chain_rejects_unknown_ci(pki: Pki) -> None:
    other_ci, _ = issue_ci(pki.curve, **VALID)
    with pytest.raises(CiUnknown):
        verify_euicc_chain(pki.euicc, pki.eum, [other_ci], T0)


def test_verify_euicc_chain_rejects_chain_under_other_curves_ci(pki: Pki) -> None:
    other_curve = next(c for c in Curve if c is not pki.curve)
    other_ci, _ = issue_ci(other_curve, **VALID)
    with pytest.raises(CiUnknown):
        verify_euicc_chain(pki.euicc, pki.eum, [other_ci], T0)


def test_verify_euicc_chain_rejects_eum_signed_by_another_ci_key(pki: Pki) -> None:
    # The EUM names the trusted CI (AKI = its SKI) but was signed with a different key.
    rogue_key = generate_private_key(pki.curve)
    eum, eum_key = issue_eum(pki.ci, rogue_key, eins=[EIN], curve=pki.curve, **VALID)
    euicc, _ = issue_euicc(eum, eum_key, eid=EID, curve=pki.curve, **VALID)
    with pytest.raises(EumCertificateInvalid, match="signature"):
        verify_euicc_chain(euicc, eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_tampered_eum_signature(pki: Pki) -> None:
    with pytest.raises(EumCertificateInvalid):
        verify_euicc_chain(pki.euicc, tampered(pki.eum), [pki.ci], T0)


def test_verify_euicc_chain_rejects_eum_that_is_not_a_ca(pki: Pki) -> None:
    # A DPauth certificate of the same CI, offered as the EUM: right signature, wrong profile.
    dpauth, dpauth_key = issue_dpauth(
        pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID
    )
    euicc, _ = issue_euicc(dpauth, dpauth_key, eid=EID, curve=pki.curve, **VALID)
    with pytest.raises(EumCertificateInvalid, match="basicConstraints"):
        verify_euicc_chain(euicc, dpauth, [pki.ci], T0)


def test_verify_euicc_chain_rejects_expired_eum(pki: Pki) -> None:
    eum, eum_key = issue_eum(
        pki.ci,
        pki.ci_key,
        eins=[EIN],
        curve=pki.curve,
        not_before=LONG_AGO,
        not_after=T0 - timedelta(days=1),
    )
    euicc, _ = issue_euicc(eum, eum_key, eid=EID, curve=pki.curve, **VALID)
    with pytest.raises(EumCertificateExpired):
        verify_euicc_chain(euicc, eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_eum_not_yet_valid(pki: Pki) -> None:
    with pytest.raises(EumCertificateExpired):
        verify_euicc_chain(pki.euicc, pki.eum, [pki.ci], LONG_AGO - timedelta(seconds=1))


def test_verify_euicc_chain_rejects_tampered_euicc_signature(pki: Pki) -> None:
    with pytest.raises(EuiccCertificateInvalid, match="signature"):
        verify_euicc_chain(tampered(pki.euicc), pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_euicc_of_another_eum(pki: Pki) -> None:
    other_eum, other_key = issue_eum(pki.ci, pki.ci_key, eins=[EIN], curve=pki.curve, **VALID)
    euicc, _ = issue_euicc(other_eum, other_key, eid=EID, curve=pki.curve, **VALID)
    with pytest.raises(EuiccCertificateInvalid, match="authorityKeyIdentifier"):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_expired_euicc(pki: Pki) -> None:
    euicc, _ = issue_euicc(
        pki.eum,
        pki.eum_key,
        eid=EID,
        curve=pki.curve,
        not_before=LONG_AGO,
        not_after=T0 - timedelta(seconds=1),
    )
    with pytest.raises(EuiccCertificateExpired):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_eid_outside_the_eums_ein(pki: Pki) -> None:
    euicc, _ = issue_euicc(pki.eum, pki.eum_key, eid=OTHER_EID, curve=pki.curve, **VALID)
    with pytest.raises(EidOutOfRange):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_eid_with_wrong_check_digits(pki: Pki) -> None:
    bad = EID[:-2] + f"{(int(EID[-2:]) + 1) % 100:02d}"
    euicc, _ = issue_euicc(pki.eum, pki.eum_key, eid=bad, curve=pki.curve, **VALID)
    with pytest.raises(EidOutOfRange):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_eid_of_wrong_length(pki: Pki) -> None:
    euicc, _ = issue_euicc(pki.eum, pki.eum_key, eid=EID[:-1], curve=pki.curve, **VALID)
    with pytest.raises(EidOutOfRange):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_euicc_organisation_not_permitted(pki: Pki) -> None:
    euicc, _ = issue_euicc(
        pki.eum,
        pki.eum_key,
        eid=EID,
        curve=pki.curve,
        organization="Someone Else",
        **VALID,
    )
    with pytest.raises(EidOutOfRange):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_accepts_any_of_several_permitted_eins(pki: Pki) -> None:
    eum, eum_key = issue_eum(
        pki.ci, pki.ci_key, eins=[EIN, OTHER_EID[:8]], curve=pki.curve, **VALID
    )
    assert permitted_eins(eum) == [EIN, OTHER_EID[:8]]
    euicc, _ = issue_euicc(eum, eum_key, eid=OTHER_EID, curve=pki.curve, **VALID)
    assert verify_euicc_chain(euicc, eum, [pki.ci], T0).eid == OTHER_EID


def test_verify_euicc_chain_reports_expired_eum_before_eid_out_of_range(
    pki: Pki,
) -> None:
    eum, eum_key = issue_eum(
        pki.ci,
        pki.ci_key,
        eins=[EIN],
        curve=pki.curve,
        not_before=LONG_AGO,
        not_after=T0 - timedelta(days=1),
    )
    euicc, _ = issue_euicc(eum, eum_key, eid=OTHER_EID, curve=pki.curve, **VALID)
    with pytest.raises(EumCertificateExpired):
        verify_euicc_chain(euicc, eum, [pki.ci], T0)


def test_verify_euicc_chain_reports_expired_euicc_before_eid_out_of_range(
    pki: Pki,
) -> None:
    euicc, _ = issue_euicc(
        pki.eum,
        pki.eum_key,
        eid=OTHER_EID,
        curve=pki.curve,
        not_before=LONG_AGO,
        not_after=T0 - timedelta(days=1),
    )
    with pytest.raises(EuiccCertificateExpired):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_reports_bad_euicc_signature_before_expired_euicc(
    pki: Pki,
) -> None:
    # SGP.22 4.5.2.2: the signature is checked before the validity period.
    euicc, _ = issue_euicc(
        pki.eum,
        pki.eum_key,
        eid=EID,
        curve=pki.curve,
        not_before=LONG_AGO,
        not_after=T0 - timedelta(days=1),
    )
    with pytest.raises(EuiccCertificateInvalid, match="signature"):
        verify_euicc_chain(tampered(euicc), pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_reports_expired_euicc_before_bad_euicc_profile(
    pki: Pki,
) -> None:
    # SGP.22 section 5.6.2 / 4.5.2.2: validity right after the signature, the profile afterwards.
    euicc = reissued(
        pki.euicc,
        pki.eum_key,
        drop=(ExtensionOID.KEY_USAGE,),
        add=((x509.BasicConstraints(ca=True, path_length=None), True),),
        not_after=T0 - timedelta(days=1),
    )
    with pytest.raises(EuiccCertificateExpired):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)
    with pytest.raises(EuiccCertificateInvalid, match="must not be a CA"):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0 - timedelta(days=2))


def test_verify_euicc_chain_reports_bad_euicc_profile_before_eid_out_of_range(
    pki: Pki,
) -> None:
    euicc, _ = issue_euicc(pki.eum, pki.eum_key, eid=OTHER_EID, curve=pki.curve, **VALID)
    euicc = reissued(euicc, pki.eum_key, drop=(ExtensionOID.CERTIFICATE_POLICIES,))
    with pytest.raises(EuiccCertificateInvalid, match="id-rspRole-euicc"):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_reports_expired_eum_before_bad_eum_profile(pki: Pki) -> None:
    # The EUM is signed by the CI but is no CA and has no keyUsage; it is also expired.
    eum = reissued(
        pki.eum,
        pki.ci_key,
        drop=(ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE),
        not_after=T0 - timedelta(days=1),
    )
    euicc = reissued(pki.euicc, pki.eum_key)
    with pytest.raises(EumCertificateExpired):
        verify_euicc_chain(euicc, eum, [pki.ci], T0)
    with pytest.raises(EumCertificateInvalid, match="basicConstraints"):
        verify_euicc_chain(euicc, eum, [pki.ci], T0 - timedelta(days=2))


def test_verify_euicc_chain_reports_bad_eum_signature_before_expired_eum(pki: Pki) -> None:
    eum = reissued(pki.eum, pki.ci_key, not_after=T0 - timedelta(days=1))
    with pytest.raises(EumCertificateInvalid, match="signature"):
        verify_euicc_chain(pki.euicc, tampered(eum), [pki.ci], T0)


def test_verify_euicc_chain_reports_expired_eum_before_anything_wrong_with_the_euicc(
    pki: Pki,
) -> None:
    eum = reissued(pki.eum, pki.ci_key, not_after=T0 - timedelta(days=1))
    with pytest.raises(EumCertificateExpired):
        verify_euicc_chain(tampered(pki.euicc), eum, [pki.ci], T0)


# --- which EUM problems are "unknown CI" (SGP.22 section 5.6.2: 8.11.1/3.9) and which are not ------


def test_verify_euicc_chain_rejects_self_signed_eum_as_invalid_not_unknown_ci(pki: Pki) -> None:
    eum, eum_key = self_signed_eum(pki)
    euicc = reissued(
        pki.euicc,
        eum_key,
        drop=(ExtensionOID.AUTHORITY_KEY_IDENTIFIER,),
        add=((x509.AuthorityKeyIdentifier(subject_key_identifier(eum), None, None), False),),
    )
    with pytest.raises(EumCertificateInvalid, match="self-signed") as caught:
        verify_euicc_chain(euicc, eum, [pki.ci], T0)
    assert not isinstance(caught.value, CiUnknown)
    assert find_issuing_ci(eum, [pki.ci]) is None


def test_verify_euicc_chain_rejects_eum_whose_aki_is_its_own_ski(pki: Pki) -> None:
    # Issuer name of the CI, but the AKI names the EUM's own key: self-signed in disguise.
    eum, _ = self_signed_eum(pki)
    eum = reissued(eum, pki.ci_key, issuer=pki.ci.subject)
    assert authority_key_identifier(eum) == subject_key_identifier(eum)
    with pytest.raises(EumCertificateInvalid, match="self-signed"):
        verify_euicc_chain(pki.euicc, eum, [pki.ci], T0)


def test_verify_euicc_chain_rejects_eum_issued_by_self_named_ci(pki: Pki) -> None:
    # issuer == subject while the AKI names the trusted CI: still self-signed by its names.
    eum = reissued(pki.eum, pki.ci_key, issuer=pki.eum.subject)
    with pytest.raises(EumCertificateInvalid, match="self-signed"):
        verify_euicc_chain(pki.euicc, eum, [pki.ci], T0)


def test_verify_euicc_chain_reports_unknown_ci_for_an_aki_naming_another_ci(pki: Pki) -> None:
    other_ci, other_key = issue_ci(pki.curve, **VALID)
    eum, eum_key = issue_eum(other_ci, other_key, eins=[EIN], curve=pki.curve, **VALID)
    euicc, _ = issue_euicc(eum, eum_key, eid=EID, curve=pki.curve, **VALID)
    assert authority_key_identifier(eum) == subject_key_identifier(other_ci)
    with pytest.raises(CiUnknown, match=subject_key_identifier(other_ci).hex()):
        verify_euicc_chain(euicc, eum, [pki.ci], T0)
    with pytest.raises(CiUnknown):
        find_issuing_ci(eum, [pki.ci])


def test_verify_euicc_chain_rejects_eum_without_aki_from_unknown_issuer(pki: Pki) -> None:
    unknown = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nobody's CI")])
    eum = reissued(
        pki.eum, pki.ci_key, issuer=unknown, drop=(ExtensionOID.AUTHORITY_KEY_IDENTIFIER,)
    )
    assert authority_key_identifier(eum) is None
    with pytest.raises(EumCertificateInvalid, match="no authorityKeyIdentifier") as caught:
        verify_euicc_chain(pki.euicc, eum, [pki.ci], T0)
    assert not isinstance(caught.value, CiUnknown)


def test_verify_euicc_chain_finds_ci_by_name_for_eum_without_aki(pki: Pki) -> None:
    eum = reissued(pki.eum, pki.ci_key, drop=(ExtensionOID.AUTHORITY_KEY_IDENTIFIER,))
    assert verify_euicc_chain(pki.euicc, eum, [pki.ci], T0).ci == pki.ci
    rogue = reissued(
        pki.eum, generate_private_key(pki.curve), drop=(ExtensionOID.AUTHORITY_KEY_IDENTIFIER,)
    )
    with pytest.raises(EumCertificateInvalid, match="signature"):
        verify_euicc_chain(pki.euicc, rogue, [pki.ci], T0)


# --- certificates that load but whose extensions don't decode (SGP.22 4.5.2.2) ------------------


def test_parse_problem_names_undecodable_extensions(pki: Pki) -> None:
    assert parse_problem(pki.eum) is None
    broken = reissued(pki.eum, pki.ci_key, drop=(ExtensionOID.KEY_USAGE,), add=(MALFORMED_KEY_USAGE,))
    with pytest.raises(ValueError):
        broken.extensions  # noqa: B018 - this is what would escape unhandled
    problem = parse_problem(broken)
    assert problem is not None and "do not decode" in problem


@pytest.mark.parametrize("malformed", [MALFORMED_KEY_USAGE, MALFORMED_AKI], ids=["keyUsage", "aki"])
def test_verify_euicc_chain_rejects_eum_with_undecodable_extension(
    pki: Pki, malformed: tuple[x509.ExtensionType, bool]
) -> None:
    oid = malformed[0].oid
    eum = reissued(pki.eum, pki.ci_key, drop=(oid,), add=(malformed,))
    with pytest.raises(EumCertificateInvalid, match="do not decode"):
        verify_euicc_chain(pki.euicc, eum, [pki.ci], T0)
    # ... even when it is also expired: an undecodable certificate is not verified at all.
    with pytest.raises(EumCertificateInvalid, match="do not decode"):
        verify_euicc_chain(pki.euicc, eum, [pki.ci], FAR_AHEAD + timedelta(days=1))


@pytest.mark.parametrize("malformed", [MALFORMED_KEY_USAGE, MALFORMED_AKI], ids=["keyUsage", "aki"])
def test_verify_euicc_chain_rejects_euicc_with_undecodable_extension(
    pki: Pki, malformed: tuple[x509.ExtensionType, bool]
) -> None:
    oid = malformed[0].oid
    euicc = reissued(pki.euicc, pki.eum_key, drop=(oid,), add=(malformed,))
    with pytest.raises(EuiccCertificateInvalid, match="do not decode"):
        verify_euicc_chain(euicc, pki.eum, [pki.ci], T0)


def test_verify_euicc_chain_requires_timezone_aware_now(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone"):
        verify_euicc_chain(pki.euicc, pki.eum, [pki.ci], datetime(2030, 6, 1))


def test_every_verification_error_is_a_certificate_error() -> None:
    for cls in (
        CiUnknown,
        EumCertificateInvalid,
        EumCertificateExpired,
        EuiccCertificateInvalid,
        EuiccCertificateExpired,
        EidOutOfRange,
        ServerCertificateInvalid,
        ServerCertificateExpired,
    ):
        assert issubclass(cls, CertificateError)


# --- server certificates ----------------------------------------------------------------------


def test_verify_server_certificate_accepts_dpauth_and_dppb(pki: Pki) -> None:
    dpauth, _ = issue_dpauth(pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    dppb, _ = issue_dppb(pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    assert verify_server_certificate(dpauth, [pki.ci], T0, role="dp-auth") == pki.ci
    assert verify_server_certificate(dppb, [pki.ci], T0, role="dp-pb") == pki.ci


def test_verify_server_certificate_rejects_wrong_role(pki: Pki) -> None:
    dppb, _ = issue_dppb(pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    with pytest.raises(ServerCertificateInvalid, match="id-rspRole-dp-auth"):
        verify_server_certificate(dppb, [pki.ci], T0, role="dp-auth")


def test_verify_server_certificate_rejects_unknown_ci(pki: Pki) -> None:
    other_ci, other_key = issue_ci(pki.curve, **VALID)
    dpauth, _ = issue_dpauth(other_ci, other_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    with pytest.raises(CiUnknown):
        verify_server_certificate(dpauth, [pki.ci], T0, role="dp-auth")


def test_verify_server_certificate_rejects_tampered_signature(pki: Pki) -> None:
    dpauth, _ = issue_dpauth(pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    with pytest.raises(ServerCertificateInvalid):
        verify_server_certificate(tampered(dpauth), [pki.ci], T0, role="dp-auth")


def test_verify_server_certificate_rejects_self_signed_dpauth_as_invalid(pki: Pki) -> None:
    dpauth, _ = issue_dpauth(pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    key = generate_private_key(pki.curve)
    own = reissued(
        dpauth,
        key,
        issuer=dpauth.subject,
        key=key,
        drop=(ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER),
        add=((x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),),
    )
    with pytest.raises(ServerCertificateInvalid, match="self-signed"):
        verify_server_certificate(own, [pki.ci], T0, role="dp-auth")


def test_verify_server_certificate_rejects_undecodable_extension(pki: Pki) -> None:
    dpauth, _ = issue_dpauth(pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    broken = reissued(dpauth, pki.ci_key, drop=(ExtensionOID.KEY_USAGE,), add=(MALFORMED_KEY_USAGE,))
    with pytest.raises(ServerCertificateInvalid, match="do not decode"):
        verify_server_certificate(broken, [pki.ci], T0, role="dp-auth")


def test_verify_server_certificate_reports_expired_before_wrong_role(pki: Pki) -> None:
    dppb, _ = issue_dppb(
        pki.ci,
        pki.ci_key,
        smdp_oid="2.999.10",
        curve=pki.curve,
        not_before=LONG_AGO,
        not_after=T0 - timedelta(days=1),
    )
    with pytest.raises(ServerCertificateExpired):
        verify_server_certificate(dppb, [pki.ci], T0, role="dp-auth")


def test_verify_server_certificate_rejects_expired_dpauth(pki: Pki) -> None:
    dpauth, _ = issue_dpauth(
        pki.ci,
        pki.ci_key,
        smdp_oid="2.999.10",
        curve=pki.curve,
        not_before=LONG_AGO,
        not_after=T0 - timedelta(days=1),
    )
    with pytest.raises(ServerCertificateExpired):
        verify_server_certificate(dpauth, [pki.ci], T0, role="dp-auth")


def test_verify_server_certificate_checks_tls_server_auth(pki: Pki) -> None:
    tls, _ = issue_dptls(
        pki.ci,
        pki.ci_key,
        names=["localhost"],
        smdp_oid="2.999.10",
        curve=pki.curve,
        **VALID,
    )
    assert verify_server_certificate(tls, [pki.ci], T0, role="dp-tls") == pki.ci
    dpauth, _ = issue_dpauth(pki.ci, pki.ci_key, smdp_oid="2.999.10", curve=pki.curve, **VALID)
    with pytest.raises(ServerCertificateInvalid):
        verify_server_certificate(dpauth, [pki.ci], T0, role="dp-tls")


def test_verify_server_certificate_refuses_non_server_role(pki: Pki) -> None:
    with pytest.raises(ValueError):
        verify_server_certificate(pki.eum, [pki.ci], T0, role="eum")


# --- field helpers ----------------------------------------------------------------------------


def test_smdp_oid_of_reads_dpauth_registered_id(pki: Pki) -> None:
    dpauth, _ = issue_dpauth(pki.ci, pki.ci_key, smdp_oid="2.999.77.1", curve=pki.curve, **VALID)
    assert smdp_oid_of(dpauth) == "2.999.77.1"


def test_smdp_oid_of_rejects_certificate_without_registered_id(pki: Pki) -> None:
    with pytest.raises(ServerCertificateInvalid):
        smdp_oid_of(pki.euicc)


def test_key_identifiers_link_child_to_issuer(pki: Pki) -> None:
    assert authority_key_identifier(pki.eum) == subject_key_identifier(pki.ci)
    assert authority_key_identifier(pki.euicc) == subject_key_identifier(pki.eum)
    assert authority_key_identifier(pki.ci) is None  # roots carry only the SKI (SGP.22 4.5.2.2)
    assert len(subject_key_identifier(pki.ci)) == 20
