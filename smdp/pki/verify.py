"""Certificate verification for the RSP PKI (SGP.22 v2.x section 4.5.2.2, "Certificate verification").

Two checks live here:

* the SM-DP+ side of ES9+.AuthenticateClient (SGP.22 section 5.6.3, 3.1.2): the eUICC sends
  CERT.EUM.ECDSA and CERT.EUICC.ECDSA; the server walks them up to one of its trusted CIs and
  checks that the EID lies inside a range the EUM certificate permits;
* the eUICC side of ES10b.AuthenticateServer / PrepareDownload (SGP.22 section 5.7.13, 5.7.14): the
  eUICC checks CERT.DPauth.ECDSA / CERT.DPpb.ECDSA against its CIs.

Chains are built with subjectKeyIdentifier / authorityKeyIdentifier as section 4.5.2.2 asks, and
every signature is ECDSA-SHA256 on P-256 or brainpoolP256r1 (section 2.6.5). CRLs are not consulted.

Each certificate is checked in the order of section 4.5.2.2, and the first failure is the one raised,
so that ES9+.AuthenticateClient answers with the code of the SGP.22 section 5.6.2 error table a
conformance lab expects: the issuer (CI lookup by authorityKeyIdentifier), the signature, the
validity period, then the certificate profile (basicConstraints, keyUsage, role policy...). Only an
authorityKeyIdentifier naming a CI key we don't have is "unknown CI" (8.11.1/3.9); a self-signed
certificate, one without an authorityKeyIdentifier that no trusted CI claims, or one whose names or
extensions don't decode is an invalid certificate (8.1.2/6.1 for the EUM, 8.1.3/6.1 for the eUICC).

The EID range check is done here and not by a generic RFC 5280 name-constraints check: the EUM's
permittedSubtrees directoryName holds O and a serialNumber that is the EIN, i.e. a *prefix* of the
eUICC's 32-digit serialNumber, and the eUICC subject carries more attributes (C, CN) than the
constraint; RFC 5280 directoryName matching would reject every genuine SGP.26 eUICC certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from smdp.crypto.ecdsa import Curve
from smdp.pki.eid import is_valid_eid
from smdp.pki.roles import Role, has_role

__all__ = [
    "CertificateError",
    "CiUnknown",
    "EidOutOfRange",
    "EuiccCertificateExpired",
    "EuiccCertificateInvalid",
    "EuiccIdentity",
    "EumCertificateExpired",
    "EumCertificateInvalid",
    "ServerCertificateExpired",
    "ServerCertificateInvalid",
    "authority_key_identifier",
    "eid_of",
    "find_issuing_ci",
    "is_signed_by",
    "parse_problem",
    "permitted_eins",
    "smdp_oid_of",
    "subject_key_identifier",
    "verify_euicc_chain",
    "verify_server_certificate",
]

_E = TypeVar("_E", bound=x509.ExtensionType)


class CertificateError(Exception):
    """A certificate of the RSP PKI failed verification; subclasses say which and why."""


class CiUnknown(CertificateError):
    """The certificate's authorityKeyIdentifier names a CI key that is not among the trusted CIs.

    SGP.22 section 5.6.2: 8.11.1/3.9 "Unknown CI public key". Raised only when that AKI is present
    and is not the certificate's own subjectKeyIdentifier (a self-signed certificate is invalid).
    """


class EumCertificateInvalid(CertificateError):
    """CERT.EUM.ECDSA cannot be verified: self-signed, claimed by no trusted CI, not signed by its
    CI, undecodable, or without the EUM certificate profile (SGP.22 section 5.6.2: 8.1.2/6.1)."""


class EumCertificateExpired(CertificateError):
    """CERT.EUM.ECDSA is outside its validity period (SGP.22 section 5.6.2: 8.1.2/6.3)."""


class EuiccCertificateInvalid(CertificateError):
    """CERT.EUICC.ECDSA is not signed by the EUM, is undecodable or does not have the eUICC
    certificate profile (SGP.22 section 5.6.2: 8.1.3/6.1)."""


class EuiccCertificateExpired(CertificateError):
    """CERT.EUICC.ECDSA is outside its validity period (SGP.22 section 5.6.2: 8.1.3/6.3)."""


class EidOutOfRange(CertificateError):
    """The eUICC's EID is malformed or outside every EIN range the EUM certificate permits."""


class ServerCertificateInvalid(CertificateError):
    """An SM-DP+ certificate is self-signed, claimed by no trusted CI, not signed by the CI,
    undecodable or lacks its role's profile."""


class ServerCertificateExpired(CertificateError):
    """An SM-DP+ certificate is outside its validity period."""


@dataclass(frozen=True)
class EuiccIdentity:
    """What a verified eUICC chain establishes: who the eUICC is and the key it signs with."""

    eid: str
    public_key: ec.EllipticCurvePublicKey
    curve: Curve
    ci: x509.Certificate


# --- certificate fields -----------------------------------------------------------------------


def subject_key_identifier(cert: x509.Certificate) -> bytes:
    """The subjectKeyIdentifier (SGP.22 requires it in every RSP certificate); CertificateError if absent."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        raise CertificateError(f"{_describe(cert)} has no subjectKeyIdentifier") from None


def authority_key_identifier(cert: x509.Certificate) -> bytes | None:
    """The keyIdentifier of the authorityKeyIdentifier extension, or None if there is none."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def eid_of(euicc_cert: x509.Certificate) -> str | None:
    """The subject serialNumber of an eUICC certificate (the EID, unchecked), None unless exactly one."""
    values = euicc_cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1 or not isinstance(values[0].value, str):
        return None
    return values[0].value


def permitted_eins(eum_cert: x509.Certificate) -> list[str]:
    """The EINs (serialNumber prefixes) the EUM certificate's nameConstraints permit, in order."""
    return [ein for _org, ein in _permitted_ranges(eum_cert)]


def smdp_oid_of(dpauth_cert: x509.Certificate) -> str:
    """The SM-DP+ OID: the registeredID in the subjectAltName of CERT.DPauth.ECDSA (SGP.22 4.5.2.1)."""
    oids = _registered_ids(dpauth_cert)
    if not oids:
        raise ServerCertificateInvalid(
            f"{_describe(dpauth_cert)} has no subjectAltName registeredID"
        )
    return oids[0]


# --- building blocks ----------------------------------------------------------------------------

# What cryptography raises when it decodes, on first access, the names or extensions of a certificate
# it loaded (e.g. a keyUsage whose value is not a BIT STRING, or the same extension twice).
_UNDECODABLE = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def parse_problem(cert: x509.Certificate) -> str | None:
    """Why the parts of ``cert`` that cryptography decodes lazily (names, extensions) don't decode,
    or None if they do.

    ``load_der_x509_certificate`` only checks the outer structure; a malformed extension value only
    raises when ``.extensions`` is first read. A certificate that fails here is not a valid
    certificate (SGP.22 4.5.2.2), and is reported as such instead of escaping as a ValueError.
    """
    try:
        cert.subject  # noqa: B018 - decoded on access
        cert.issuer  # noqa: B018
        cert.extensions  # noqa: B018
    except _UNDECODABLE as exc:
        return f"names or extensions do not decode: {exc}"
    return None


def is_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``cert`` carries a valid ECDSA-SHA256 signature by ``issuer``'s key on an SGP.22 curve."""
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        return False
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        Curve.of(key)
    except ValueError:
        return False
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def find_issuing_ci(
    cert: x509.Certificate, trusted_cis: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The trusted CI that signed ``cert``, located by key identifier; None if it cannot be verified.

    The authorityKeyIdentifier is the link SGP.22 4.5.2.2 prescribes; a CI with the same name but
    a different key is a different CI, so the issuer name is only used when the AKI is absent.
    Raises CiUnknown only when the AKI names a CI key none of ``trusted_cis`` has (SGP.22 section
    5.6.2, "Unknown CI public key"); a self-signed certificate, one without an AKI that no trusted
    CI claims by name, one no candidate CI signed, or one that doesn't decode gives None.
    """
    found = _issuing_ci(cert, trusted_cis)
    return None if isinstance(found, str) else found


def _issuing_ci(
    cert: x509.Certificate, trusted_cis: Sequence[x509.Certificate]
) -> x509.Certificate | str:
    """The trusted CI that signed ``cert``, or why the certificate is invalid; CiUnknown as above."""
    problem = parse_problem(cert)
    if problem:
        return problem
    aki = authority_key_identifier(cert)
    if cert.issuer == cert.subject or (aki is not None and aki == _ski_or_none(cert)):
        return "self-signed, not issued by a CI"
    if aki is not None:
        candidates = [ci for ci in trusted_cis if _ski_or_none(ci) == aki]
        if not candidates:
            raise CiUnknown(
                f"{_describe(cert)} was issued by CI key {aki.hex()}, which is not among the trusted CIs"
            )
    else:
        candidates = [ci for ci in trusted_cis if ci.subject == cert.issuer]
        if not candidates:
            issuer = cert.issuer.rfc4514_string()
            return f"no authorityKeyIdentifier, and no trusted CI is named {issuer!r}"
    for ci in candidates:
        if is_signed_by(cert, ci):
            return ci
    return "signature does not verify with the CI key"


# --- chains -----------------------------------------------------------------------------------


def verify_euicc_chain(
    euicc_cert: x509.Certificate,
    eum_cert: x509.Certificate,
    trusted_cis: Sequence[x509.Certificate],
    now: datetime,
) -> EuiccIdentity:
    """Verify CERT.EUICC.ECDSA <- CERT.EUM.ECDSA <- CI and return the eUICC's identity.

    Follows SGP.22 4.5.2.2 and the error table of SGP.22 section 5.6.2, raising the first failure:

    1. CERT.EUM.ECDSA: its authorityKeyIdentifier names a CI key we don't have (CiUnknown,
       8.11.1/3.9); undecodable, self-signed, without an AKI and claimed by no trusted CI, or not
       signed by the CI (EumCertificateInvalid, 8.1.2/6.1); outside its validity period
       (EumCertificateExpired, 8.1.2/6.3); without the EUM certificate profile
       (EumCertificateInvalid). A signature that verifies comes before the validity period, and
       an expired certificate is reported as expired whatever else is wrong in its profile.
    2. CERT.EUICC.ECDSA: undecodable, AKI not the EUM's key identifier, or not signed by the EUM
       (EuiccCertificateInvalid, 8.1.3/6.1); outside its validity period (EuiccCertificateExpired,
       8.1.3/6.3); without the eUICC certificate profile (EuiccCertificateInvalid).
    3. The EID: well-formed and inside an EIN the EUM certificate permits (EidOutOfRange).

    ``now`` must be timezone-aware.
    """
    _require_aware(now)

    ci = _issuing_ci(eum_cert, trusted_cis)
    if isinstance(ci, str):
        raise EumCertificateInvalid(f"{_describe(eum_cert)}: {ci}")
    if not _within_validity(eum_cert, now):
        raise EumCertificateExpired(f"{_describe(eum_cert)} is not valid at {now.isoformat()}")
    problem = _eum_profile_problem(eum_cert)
    if problem:
        raise EumCertificateInvalid(f"{_describe(eum_cert)}: {problem}")

    problem = _euicc_link_problem(euicc_cert, eum_cert)
    if problem:
        raise EuiccCertificateInvalid(f"{_describe(euicc_cert)}: {problem}")
    if not _within_validity(euicc_cert, now):
        raise EuiccCertificateExpired(f"{_describe(euicc_cert)} is not valid at {now.isoformat()}")
    problem = _end_entity_problem(euicc_cert, Role.EUICC, "an eUICC")
    if problem:
        raise EuiccCertificateInvalid(f"{_describe(euicc_cert)}: {problem}")

    eid = eid_of(euicc_cert)
    if eid is None or not is_valid_eid(eid):
        raise EidOutOfRange(f"eUICC subject serialNumber {eid!r} is not a valid 32-digit EID")
    if not _eid_permitted(euicc_cert, eid, eum_cert):
        raise EidOutOfRange(
            f"EID {eid} is outside the EINs {permitted_eins(eum_cert)} permitted by {_describe(eum_cert)}"
        )

    public_key = euicc_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):  # excluded by the profile check
        raise EuiccCertificateInvalid(f"{_describe(euicc_cert)}: not an EC key")
    return EuiccIdentity(eid=eid, public_key=public_key, curve=Curve.of(public_key), ci=ci)


_SERVER_ROLES = frozenset({Role.DP_AUTH, Role.DP_PB, Role.DP_TLS, Role.DS_AUTH, Role.DS_TLS})


def verify_server_certificate(
    cert: x509.Certificate,
    trusted_cis: Sequence[x509.Certificate],
    now: datetime,
    *,
    role: str,
) -> x509.Certificate:
    """Verify an SM-DP+ (or SM-DS) certificate signed directly by a trusted CI; return that CI.

    ``role`` is a Role value such as "dp-auth" or "dp-pb". SGP.22 v2 has no sub-CAs for the
    SM-DP+ (and the SGP.26 DP certificates are signed by the CI itself), so one level is checked.
    Same order and rule as verify_euicc_chain (SGP.22 4.5.2.2): CiUnknown only for an
    authorityKeyIdentifier naming a CI key not in ``trusted_cis``; ServerCertificateInvalid if the
    certificate is undecodable, self-signed, claimed by no CI or not signed by it; then
    ServerCertificateExpired; then ServerCertificateInvalid for the role's profile.
    """
    _require_aware(now)
    wanted = Role(role)
    if wanted not in _SERVER_ROLES:
        raise ValueError(f"{role!r} is not a server certificate role")
    ci = _issuing_ci(cert, trusted_cis)
    if isinstance(ci, str):
        raise ServerCertificateInvalid(f"{_describe(cert)}: {ci}")
    if not _within_validity(cert, now):
        raise ServerCertificateExpired(f"{_describe(cert)} is not valid at {now.isoformat()}")
    problem = _server_profile_problem(cert, wanted)
    if problem:
        raise ServerCertificateInvalid(f"{_describe(cert)}: {problem}")
    return ci


# --- certificate profiles (SGP.22 4.5.2.2 "the certificate verifier SHALL verify") --------------


def _eum_profile_problem(cert: x509.Certificate) -> str | None:
    common = _common_problem(cert)
    if common:
        return common
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or not bc.ca or bc.path_length != 0:
        return "basicConstraints must be cA=TRUE with pathLenConstraint 0"
    ku = _ext(cert, x509.KeyUsage)
    if ku is None or not ku.key_cert_sign:
        return "keyUsage must include keyCertSign"
    if not has_role(cert, Role.EUM):
        return f"certificatePolicies lacks id-rspRole-eum ({Role.EUM.oid.dotted_string})"
    try:
        subject_key_identifier(cert)
    except CertificateError as exc:
        return str(exc)
    return None


def _euicc_link_problem(cert: x509.Certificate, eum_cert: x509.Certificate) -> str | None:
    """Whether CERT.EUICC.ECDSA decodes, names the EUM's key (AKI) and carries its signature."""
    problem = parse_problem(cert)
    if problem:
        return problem
    aki = authority_key_identifier(cert)
    if aki is None or aki != _ski_or_none(eum_cert):
        return "authorityKeyIdentifier does not match the EUM's subjectKeyIdentifier"
    if not is_signed_by(cert, eum_cert):
        return "signature does not verify with the EUM key"
    return None


def _server_profile_problem(cert: x509.Certificate, role: Role) -> str | None:
    problem = _end_entity_problem(cert, role, "an SM-DP+")
    if problem:
        return problem
    if role in (Role.DP_TLS, Role.DS_TLS):
        eku = _ext(cert, x509.ExtendedKeyUsage)
        if eku is None or ExtendedKeyUsageOID.SERVER_AUTH not in eku:
            return "extendedKeyUsage must include serverAuth"
    if role is Role.DP_AUTH and not _registered_ids(cert):
        # The LPA compares this OID with the one in the activation code (SGP.22 3.1.2).
        return "subjectAltName lacks the SM-DP+ OID (registeredID)"
    return None


def _end_entity_problem(cert: x509.Certificate, role: Role, what: str) -> str | None:
    """What every signing (non-CA) certificate of SGP.22 4.5.2 must have: digitalSignature and its role."""
    common = _common_problem(cert)
    if common:
        return common
    if _is_ca(cert):
        return f"{what} certificate must not be a CA"
    ku = _ext(cert, x509.KeyUsage)
    if ku is None or not ku.digital_signature:
        return "keyUsage must include digitalSignature"
    if not has_role(cert, role):
        return f"certificatePolicies lacks id-rspRole-{role.value} ({role.oid.dotted_string})"
    return None


def _common_problem(cert: x509.Certificate) -> str | None:
    """Checks every RSP certificate must pass besides its own profile."""
    if cert.version is not x509.Version.v3:
        return "not an X.509 v3 certificate"
    try:
        Curve.of(cert.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:  # not EC / a curve cryptography doesn't know
        return f"public key: {exc}"
    # RFC 5280 4.2 and SGP.22 4.5.2.2: a verifier rejects any critical extension it does not know.
    for ext in cert.extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            return f"unrecognised critical extension {ext.oid.dotted_string}"
    return None


# --- EID ranges ---------------------------------------------------------------------------------


def _permitted_ranges(eum_cert: x509.Certificate) -> list[tuple[str | None, str]]:
    """(organization or None, EIN) for every directoryName permittedSubtree with a serialNumber."""
    nc = _ext(eum_cert, x509.NameConstraints)
    if nc is None or not nc.permitted_subtrees:
        return []
    ranges: list[tuple[str | None, str]] = []
    for subtree in nc.permitted_subtrees:
        if not isinstance(subtree, x509.DirectoryName):
            continue
        orgs = [a.value for a in subtree.value.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        org = orgs[0] if orgs and isinstance(orgs[0], str) else None
        for attr in subtree.value.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
            if isinstance(attr.value, str):
                ranges.append((org, attr.value))
    return ranges


def _eid_permitted(euicc_cert: x509.Certificate, eid: str, eum_cert: x509.Certificate) -> bool:
    """SGP.22 4.5.2.2 for CERT.EUICC.ECDSA: O is one of the permitted organisations and the EID
    (serialNumber) starts with the EIN given for that organisation. An EUM certificate without
    nameConstraints permits nothing: the EUM has no EID range to vouch for."""
    subject_orgs = {
        a.value for a in euicc_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    }
    return any(ein and eid.startswith(ein) and (org is None or org in subject_orgs) for org, ein in _permitted_ranges(eum_cert))


# --- small helpers ------------------------------------------------------------------------------


def _ext(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _ext(cert, x509.BasicConstraints)
    return bool(bc is not None and bc.ca)


def _ski_or_none(cert: x509.Certificate) -> bytes | None:
    try:
        return subject_key_identifier(cert)
    except CertificateError:
        return None


def _registered_ids(cert: x509.Certificate) -> list[str]:
    san = _ext(cert, x509.SubjectAlternativeName)
    if san is None:
        return []
    return [oid.dotted_string for oid in san.get_values_for_type(x509.RegisteredID)]


def _within_validity(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))")


def _describe(cert: x509.Certificate) -> str:
    return f"certificate {cert.subject.rfc4514_string()!r} (serial {cert.serial_number:#x})"
