"""A test RSP PKI issued on the spot (certificate profiles of SGP.22 v2.x section 4.5.2.1).

Mirrors the GSMA SGP.26 test certificates extension by extension, for both curves SGP.22 allows:

    CI (self-signed root) ─┬─ EUM (CA, pathLen 0, nameConstraints = permitted EIN) ── eUICC
                           ├─ DPauth, DPpb (signed by the CI itself, as in SGP.22 v2)
                           └─ DPtls (NIST only: serverAuth, SAN = the server's names)

The certificates are for tests and local runs only. The default EIN is 89049032, the EIN of the
GSMA SGP.26 test EUM: EIDs issued here then look like the test EIDs tools already expect, and they
can never be a production EID because that EIN belongs to the GSMA test PKI.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smdp.crypto.ecdsa import Curve, generate_private_key
from smdp.pki.eid import is_valid_eid, random_eid
from smdp.pki.extensions import (
    authority_key_identifier_of,
    crl_distribution_points,
    key_usage,
    registered_id_san,
    role_policies,
)
from smdp.pki.files import (
    manifest_text,
    write_atomic,
    write_certificate,
    write_private_key,
)
from smdp.pki.roles import Role

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_EIN",
    "init_pki",
    "issue_ci",
    "issue_dpauth",
    "issue_dppb",
    "issue_dptls",
    "issue_euicc",
    "issue_eum",
]

DEFAULT_EIN = "89049032"
# not_before lies this far in the past so a device whose clock is a little behind still accepts.
CLOCK_SKEW = timedelta(days=1)
# OIDs in the ITU-T example arc (2.999), as SGP.26 uses for its test CI and EUM identities.
TEST_CI_OID = "2.999.1"
TEST_EUM_OID = "2.999.5"
_YEAR = timedelta(days=365)

Key = ec.EllipticCurvePrivateKey
Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]

_CURVE_LABEL = {
    Curve.NIST_P256: "NIST P-256",
    Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
}


# --- single certificates ----------------------------------------------------------------------


def issue_ci(
    curve: Curve,
    *,
    common_name: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: Key | None = None,
) -> Issued:
    """A self-signed CI root (id-rspRole-ci; keyCertSign + cRLSign; cA without path length)."""
    key = _key_for(curve, key)
    cn = common_name or f"smdp Test CI ({_CURVE_LABEL[curve]})"
    subject = _name(C="XX", O="smdp test PKI", CN=cn)
    builder = (
        _builder(None, subject, key, not_before, not_after, 30 * _YEAR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(role_policies(Role.CI), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(registered_id_san(TEST_CI_OID), critical=False)
        .add_extension(crl_distribution_points(), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def issue_eum(
    ci_cert: x509.Certificate,
    ci_key: Key,
    *,
    eins: list[str],
    curve: Curve,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    organization: str = "smdp Test EUM",
    key: Key | None = None,
) -> Issued:
    """An EUM certificate signed by the CI, permitting EIDs that start with any of ``eins``.

    Each EIN becomes one permittedSubtrees directoryName {O = organization, serialNumber = EIN},
    the form SGP.22 4.5.2.1 prescribes and SGP.26 uses.
    """
    if not eins:
        raise ValueError("an EUM certificate needs at least one permitted EIN")
    key = _key_for(curve, key)
    subject = _name(C="XX", O=organization, CN=f"{organization} ({_CURVE_LABEL[curve]})")
    subtrees: list[x509.GeneralName] = [
        x509.DirectoryName(_name(O=organization, serialNumber=ein)) for ein in eins
    ]
    constraints = x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None)
    builder = (
        _builder(ci_cert, subject, key, not_before, not_after, 25 * _YEAR)
        .add_extension(key_usage(key_cert_sign=True), critical=True)
        .add_extension(role_policies(Role.EUM), critical=True)
        .add_extension(registered_id_san(TEST_EUM_OID), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(crl_distribution_points(), critical=False)
        .add_extension(constraints, critical=True)
    )
    return builder.sign(ci_key, hashes.SHA256()), key


def issue_euicc(
    eum_cert: x509.Certificate,
    eum_key: Key,
    *,
    eid: str,
    curve: Curve,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    organization: str | None = None,
    key: Key | None = None,
) -> Issued:
    """An eUICC certificate signed by the EUM; subject serialNumber = ``eid`` (not checked here,
    so tests can issue malformed ones). O defaults to the EUM's own O, which is what its
    nameConstraints permit (SGP.22 4.5.2.2)."""
    key = _key_for(curve, key)
    if organization is None:
        orgs = eum_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        organization = str(orgs[0].value) if orgs else None
    subject = _name(C="XX", O=organization, serialNumber=eid, CN="smdp Test eUICC")
    builder = (
        _builder(eum_cert, subject, key, not_before, not_after, 20 * _YEAR)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(role_policies(Role.EUICC), critical=True)
    )
    return builder.sign(eum_key, hashes.SHA256()), key


def issue_dpauth(
    ci_cert: x509.Certificate,
    ci_key: Key,
    *,
    smdp_oid: str,
    curve: Curve,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: Key | None = None,
) -> Issued:
    """CERT.DPauth.ECDSA: signs serverSigned1; SAN registeredID = the SM-DP+ OID."""
    return _issue_dp(Role.DP_AUTH, ci_cert, ci_key, smdp_oid, curve, not_before, not_after, key)


def issue_dppb(
    ci_cert: x509.Certificate,
    ci_key: Key,
    *,
    smdp_oid: str,
    curve: Curve,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: Key | None = None,
) -> Issued:
    """CERT.DPpb.ECDSA: signs smdpSigned2 and the Bound Profile Package; SAN as DPauth."""
    return _issue_dp(Role.DP_PB, ci_cert, ci_key, smdp_oid, curve, not_before, not_after, key)


def issue_dptls(
    ci_cert: x509.Certificate,
    ci_key: Key,
    *,
    names: list[str],
    smdp_oid: str,
    curve: Curve = Curve.NIST_P256,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: Key | None = None,
) -> Issued:
    """CERT.DP.TLS for ES9+: serverAuth (and clientAuth, as SGP.26), SAN = DNS names / IP
    addresses in ``names`` plus the SM-DP+ OID; certificatePolicies non-critical, as in SGP.26,
    so generic TLS stacks never trip over it."""
    if not names:
        raise ValueError("a TLS certificate needs at least one DNS name or IP address")
    key = _key_for(curve, key)
    general_names: list[x509.GeneralName] = []
    for name in names:
        try:
            general_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general_names.append(x509.DNSName(name))
    general_names.append(x509.RegisteredID(x509.ObjectIdentifier(smdp_oid)))
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    subject = _name(O="smdp test SM-DP+", CN=names[0])
    builder = (
        _builder(ci_cert, subject, key, not_before, not_after, 2 * _YEAR)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=True)
        .add_extension(role_policies(Role.DP_TLS), critical=False)
        .add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        .add_extension(crl_distribution_points(), critical=False)
    )
    return builder.sign(ci_key, hashes.SHA256()), key


# --- a whole PKI on disk ----------------------------------------------------------------------


def init_pki(
    directory: Path,
    *,
    smdp_oid: str = "2.999.10",
    tls_names: list[str] | None = None,
    eid: str | None = None,
    ein: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Create a complete test PKI for both curves under ``directory``; return its manifest path.

    Layout: ``{nist,brainpool}/{ci,eum,euicc,dpauth,dppb}.{crt.der,key.pem}``,
    ``tls/{dptls.crt.pem,dptls.key.pem,ci.crt.pem}`` and ``pki.toml`` (see smdp.pki.store).
    ``tls_names`` defaults to localhost, 127.0.0.1 and ::1. The eUICC certificates of both curves
    carry the same EID: ``eid`` if given, else a random one inside ``ein`` (default: the EIN of
    ``eid``, else DEFAULT_EIN). Refuses (FileExistsError) to replace any file unless ``overwrite``.
    """
    directory = Path(directory)
    names = list(tls_names) if tls_names is not None else ["localhost", "127.0.0.1", "::1"]
    x509.ObjectIdentifier(smdp_oid)  # ValueError now rather than half-way through
    if eid is not None and not is_valid_eid(eid):
        raise ValueError(f"{eid!r} is not a valid EID (32 digits, ISO 7064 MOD 97-10 check digits)")
    if ein is None:
        ein = eid[:8] if eid is not None else DEFAULT_EIN
    if eid is not None and not eid.startswith(ein):
        raise ValueError(f"EID {eid} does not start with EIN {ein}")
    eid = eid if eid is not None else random_eid(ein)

    files = {
        f"{curve.value}/{part}.{ext}"
        for curve in Curve
        for part in ("ci", "eum", "euicc", "dpauth", "dppb")
        for ext in ("crt.der", "key.pem")
    } | {"tls/dptls.crt.pem", "tls/dptls.key.pem", "tls/ci.crt.pem", "pki.toml"}
    if not overwrite:
        existing = sorted(str(directory / f) for f in files if (directory / f).exists())
        if existing:
            raise FileExistsError(
                f"a PKI already exists ({existing[0]}); pass overwrite=True to replace it"
            )

    cis: dict[Curve, Issued] = {}
    for curve in Curve:
        sub = directory / curve.value
        sub.mkdir(parents=True, exist_ok=True)
        ci = cis[curve] = issue_ci(curve)
        eum = issue_eum(*ci, eins=[ein], curve=curve)
        issued = {
            "ci": ci,
            "eum": eum,
            "euicc": issue_euicc(*eum, eid=eid, curve=curve),
            "dpauth": issue_dpauth(*ci, smdp_oid=smdp_oid, curve=curve),
            "dppb": issue_dppb(*ci, smdp_oid=smdp_oid, curve=curve),
        }
        for part, (cert, key) in issued.items():
            write_certificate(sub / f"{part}.crt.der", cert, serialization.Encoding.DER)
            write_private_key(sub / f"{part}.key.pem", key)

    (directory / "tls").mkdir(parents=True, exist_ok=True)
    nist_ci = cis[Curve.NIST_P256]
    tls_cert, tls_key = issue_dptls(*nist_ci, names=names, smdp_oid=smdp_oid)
    write_certificate(directory / "tls" / "dptls.crt.pem", tls_cert, serialization.Encoding.PEM)
    write_private_key(directory / "tls" / "dptls.key.pem", tls_key)
    write_certificate(directory / "tls" / "ci.crt.pem", nist_ci[0], serialization.Encoding.PEM)

    manifest = directory / "pki.toml"
    # Written last: a directory without pki.toml is an interrupted run, never a usable PKI.
    write_atomic(manifest, manifest_text(smdp_oid, eid, ein, names).encode(), 0o644)
    return manifest


# --- helpers ------------------------------------------------------------------------------------


def _issue_dp(
    role: Role,
    ci_cert: x509.Certificate,
    ci_key: Key,
    smdp_oid: str,
    curve: Curve,
    not_before: datetime | None,
    not_after: datetime | None,
    key: Key | None,
) -> Issued:
    key = _key_for(curve, key)
    cn = f"smdp Test SM-DP+ {role.value} ({_CURVE_LABEL[curve]})"
    builder = (
        _builder(ci_cert, _name(O="smdp test SM-DP+", CN=cn), key, not_before, not_after, 5 * _YEAR)
        .add_extension(registered_id_san(smdp_oid), critical=False)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(role_policies(role), critical=True)
        .add_extension(crl_distribution_points(), critical=False)
    )
    return builder.sign(ci_key, hashes.SHA256()), key


def _key_for(curve: Curve, key: Key | None) -> Key:
    if key is None:
        return generate_private_key(curve)
    if Curve.of(key) is not curve:
        raise ValueError(f"key is on {Curve.of(key).value}, certificate wants {curve.value}")
    return key


_NAME_OIDS = {
    "C": NameOID.COUNTRY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "CN": NameOID.COMMON_NAME,
}


def _name(**attributes: str | None) -> x509.Name:
    """A distinguished name from C / O / serialNumber / CN, in argument order; None is left out."""
    return x509.Name(
        [x509.NameAttribute(_NAME_OIDS[k], v) for k, v in attributes.items() if v is not None]
    )


def _builder(
    issuer_cert: x509.Certificate | None,
    subject: x509.Name,
    key: Key,
    not_before: datetime | None,
    not_after: datetime | None,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    """Serial, names, validity, key and the key identifiers every RSP certificate has; a root
    (``issuer_cert`` None) carries the SKI only (SGP.22 4.5.2.2)."""
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .issuer_name(subject if issuer_cert is None else issuer_cert.subject)
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before if not_before is not None else now - CLOCK_SKEW)
        .not_valid_after(not_after if not_after is not None else now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(authority_key_identifier_of(issuer_cert), critical=False)
    return builder
