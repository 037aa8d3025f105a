"""A test RSP PKI issued on the spot (certificate profiles of SGP.22 v2.x section 4.5.2.1).

Mirrors the GSMA SGP.26 test certificates extension by extension, for both curves SGP.22 allows:

    CI (self-signed root) ─┬─ EUM (CA, pathLen 0, nameConstraints = permitted EIN) ── eUICC
                           ├─ DPauth, DPpb (signed by the CI itself, as in SGP.22 v2)
                           └─ DPtls (NIST only: serverAuth, SAN = the server's names)

The certificates are for tests and local runs only. The default EIN is 89049032, the EIN of the
GSMA SGP.26 test EUM: EIDs issued here then look like the test EIDs tools already expect, and they
can never be a production EID because that EIN belongs to the GSMA test PKI.

Three ways to get one on disk:

* :func:`init_pki` — a fresh PKI with random keys (``smdp pki init``; ``smdp serve`` on first use);
* :func:`reissue_dptls` — the DPtls certificate of such a PKI again, for more host names
  (``smdp serve --address HOST`` when HOST is not named yet), under the same CI;
* :func:`init_public_test_pki` — the committed ``certs/smdp-test-pki`` (tools/make_test_pki.py): every key
  derived from a public seed, fixed serial numbers and validity, deterministic ECDSA (RFC 6979), so
  the same arguments give byte-identical files anywhere, and an LPA set up once with its CI keeps
  working with every checkout. Its private keys are public by design: never trust that CI outside a lab.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smdp.crypto.ecdsa import Curve, generate_private_key
from smdp.pki.eid import eid_check_digits, is_valid_eid, random_eid
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
from smdp.pki.store import PkiConfigError, load_certificate, load_private_key
from smdp.pki.tls import certificate_names, names_host, normalize_tls_name
from smdp.pki.verify import authority_key_identifier, smdp_oid_of, subject_key_identifier

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_EIN",
    "DEFAULT_TLS_NAMES",
    "PUBLIC_TEST_EID",
    "PUBLIC_TEST_NOT_AFTER",
    "PUBLIC_TEST_NOT_BEFORE",
    "PUBLIC_TEST_ORGANIZATION",
    "PUBLIC_TEST_SEED",
    "PUBLIC_TEST_TLS_NAMES",
    "init_pki",
    "init_public_test_pki",
    "issue_ci",
    "issue_dpauth",
    "issue_dppb",
    "issue_dptls",
    "issue_euicc",
    "issue_eum",
    "reissue_dptls",
    "tls_names_with_defaults",
]

DEFAULT_EIN = "89049032"
# not_before lies this far in the past so a device whose clock is a little behind still accepts.
CLOCK_SKEW = timedelta(days=1)
# OIDs in the ITU-T example arc (2.999), as SGP.26 uses for its test CI and EUM identities.
TEST_CI_OID = "2.999.1"
TEST_EUM_OID = "2.999.5"
_YEAR = timedelta(days=365)
# What a generated DPtls certificate always names: the server as seen from this machine.
DEFAULT_TLS_NAMES = ("localhost", "127.0.0.1", "::1")

# The committed public test PKI (certs/smdp-test-pki.toml, tools/make_test_pki.py). Changing any of
# these changes every file of it, and LPAs configured with its CI would have to be set up again.
PUBLIC_TEST_SEED = "smdp public test PKI, version 1"
PUBLIC_TEST_ORGANIZATION = "smdp PUBLIC TEST PKI - NOT FOR PRODUCTION"
# UTCTime covers validity up to the end of 2049 (RFC 5280 4.1.2.5); later dates are GeneralizedTime,
# which some card and LPA certificate parsers handle badly. So: the longest life in UTCTime.
PUBLIC_TEST_NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
PUBLIC_TEST_NOT_AFTER = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
# smdp.test: a name under the .test TLD (RFC 6761, never delegated) that a lab points at its server.
PUBLIC_TEST_TLS_NAMES = (*DEFAULT_TLS_NAMES, "smdp.test")
PUBLIC_TEST_EID = "890490320000000000000000000001" + eid_check_digits("890490320000000000000000000001")

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
    organization: str = "smdp test PKI",
    serial_number: int | None = None,
    deterministic: bool = False,
) -> Issued:
    """A self-signed CI root (id-rspRole-ci; keyCertSign + cRLSign; cA without path length).

    Like every issue_* function: ``serial_number`` defaults to a random one, ``deterministic`` signs
    with RFC 6979 ECDSA (same input, same certificate bytes)."""
    key = _key_for(curve, key)
    cn = common_name or f"smdp Test CI ({_CURVE_LABEL[curve]})"
    subject = _name(C="XX", O=organization, CN=cn)
    builder = (
        _builder(None, subject, key, not_before, not_after, 30 * _YEAR, serial_number)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(role_policies(Role.CI), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(registered_id_san(TEST_CI_OID), critical=False)
        .add_extension(crl_distribution_points(), critical=False)
    )
    return _sign(builder, key, deterministic), key


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
    common_name: str | None = None,
    serial_number: int | None = None,
    deterministic: bool = False,
) -> Issued:
    """An EUM certificate signed by the CI, permitting EIDs that start with any of ``eins``.

    Each EIN becomes one permittedSubtrees directoryName {O = organization, serialNumber = EIN},
    the form SGP.22 4.5.2.1 prescribes and SGP.26 uses.
    """
    if not eins:
        raise ValueError("an EUM certificate needs at least one permitted EIN")
    key = _key_for(curve, key)
    subject = _name(C="XX", O=organization, CN=common_name or f"{organization} ({_CURVE_LABEL[curve]})")
    subtrees: list[x509.GeneralName] = [
        x509.DirectoryName(_name(O=organization, serialNumber=ein)) for ein in eins
    ]
    constraints = x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None)
    builder = (
        _builder(ci_cert, subject, key, not_before, not_after, 25 * _YEAR, serial_number)
        .add_extension(key_usage(key_cert_sign=True), critical=True)
        .add_extension(role_policies(Role.EUM), critical=True)
        .add_extension(registered_id_san(TEST_EUM_OID), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(crl_distribution_points(), critical=False)
        .add_extension(constraints, critical=True)
    )
    return _sign(builder, ci_key, deterministic), key


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
    common_name: str = "smdp Test eUICC",
    serial_number: int | None = None,
    deterministic: bool = False,
) -> Issued:
    """An eUICC certificate signed by the EUM; subject serialNumber = ``eid`` (not checked here,
    so tests can issue malformed ones). O defaults to the EUM's own O, which is what its
    nameConstraints permit (SGP.22 4.5.2.2)."""
    key = _key_for(curve, key)
    if organization is None:
        orgs = eum_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        organization = str(orgs[0].value) if orgs else None
    subject = _name(C="XX", O=organization, serialNumber=eid, CN=common_name)
    builder = (
        _builder(eum_cert, subject, key, not_before, not_after, 20 * _YEAR, serial_number)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(role_policies(Role.EUICC), critical=True)
    )
    return _sign(builder, eum_key, deterministic), key


def issue_dpauth(
    ci_cert: x509.Certificate,
    ci_key: Key,
    *,
    smdp_oid: str,
    curve: Curve,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: Key | None = None,
    **options: Any,
) -> Issued:
    """CERT.DPauth.ECDSA: signs serverSigned1; SAN registeredID = the SM-DP+ OID.

    ``options``: organization, common_name, serial_number, deterministic (see issue_ci)."""
    return _issue_dp(Role.DP_AUTH, ci_cert, ci_key, smdp_oid, curve, not_before, not_after, key, **options)


def issue_dppb(
    ci_cert: x509.Certificate,
    ci_key: Key,
    *,
    smdp_oid: str,
    curve: Curve,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: Key | None = None,
    **options: Any,
) -> Issued:
    """CERT.DPpb.ECDSA: signs smdpSigned2 and the Bound Profile Package; SAN as DPauth.

    ``options``: organization, common_name, serial_number, deterministic (see issue_ci)."""
    return _issue_dp(Role.DP_PB, ci_cert, ci_key, smdp_oid, curve, not_before, not_after, key, **options)


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
    organization: str = "smdp test SM-DP+",
    serial_number: int | None = None,
    deterministic: bool = False,
) -> Issued:
    """CERT.DP.TLS for ES9+: serverAuth (and clientAuth, as SGP.26), SAN = DNS names / IP
    addresses in ``names`` (normalised, duplicates dropped; see smdp.pki.tls.normalize_tls_name)
    plus the SM-DP+ OID; certificatePolicies non-critical, as in SGP.26, so generic TLS stacks never
    trip over it. The subject CN is the first name (clients ignore it; people read it)."""
    names = _unique(normalize_tls_name(name) for name in names)
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
    subject = _name(O=organization, CN=names[0])
    builder = (
        _builder(ci_cert, subject, key, not_before, not_after, 2 * _YEAR, serial_number)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=True)
        .add_extension(role_policies(Role.DP_TLS), critical=False)
        .add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        .add_extension(crl_distribution_points(), critical=False)
    )
    return _sign(builder, ci_key, deterministic), key


# --- a whole PKI on disk ----------------------------------------------------------------------

_PARTS = ("ci", "eum", "euicc", "dpauth", "dppb")
_TLS_FILES = ("tls/dptls.crt.pem", "tls/dptls.key.pem", "tls/ci.crt.pem")


def tls_names_with_defaults(extra: Sequence[str] = ()) -> list[str]:
    """DEFAULT_TLS_NAMES followed by ``extra`` (normalised, duplicates dropped); ValueError for a
    name that is neither a DNS name nor an IP address."""
    return _unique([*DEFAULT_TLS_NAMES, *(normalize_tls_name(name) for name in extra)])


def init_pki(
    directory: Path,
    *,
    smdp_oid: str = "2.999.10",
    tls_names: Sequence[str] | None = None,
    eid: str | None = None,
    ein: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Create a complete test PKI for both curves under ``directory``; return its manifest path.

    Layout: ``{nist,brainpool}/{ci,eum,euicc,dpauth,dppb}.{crt.der,key.pem}``,
    ``tls/{dptls.crt.pem,dptls.key.pem,ci.crt.pem}`` and ``pki.toml`` (see smdp.pki.store).
    ``tls_names`` defaults to DEFAULT_TLS_NAMES (see tls_names_with_defaults to add to them). The
    eUICC certificates of both curves carry the same EID: ``eid`` if given, else a random one inside
    ``ein`` (default: the EIN of ``eid``, else DEFAULT_EIN). Refuses (FileExistsError) to replace
    any file unless ``overwrite``.
    """
    directory = Path(directory)
    names = _unique(normalize_tls_name(n) for n in (DEFAULT_TLS_NAMES if tls_names is None else tls_names))
    eid, ein = _check_identity(smdp_oid, eid, ein)
    eid = eid if eid is not None else random_eid(ein)
    _refuse_to_replace(directory, [*_layout_files(), "pki.toml"], overwrite)
    _write_layout(directory, _Recipe(), smdp_oid=smdp_oid, eid=eid, ein=ein, tls_names=names)
    manifest = directory / "pki.toml"
    # Written last: a directory without pki.toml is an interrupted run, never a usable PKI.
    write_atomic(manifest, manifest_text(smdp_oid, eid, ein, names).encode(), 0o644)
    return manifest


def init_public_test_pki(
    manifest: Path,
    *,
    not_before: datetime = PUBLIC_TEST_NOT_BEFORE,
    not_after: datetime = PUBLIC_TEST_NOT_AFTER,
    tls_names: Sequence[str] = PUBLIC_TEST_TLS_NAMES,
    eid: str = PUBLIC_TEST_EID,
    smdp_oid: str = "2.999.10",
    seed: str = PUBLIC_TEST_SEED,
    overwrite: bool = False,
) -> Path:
    """Write the public test PKI: ``manifest`` (e.g. certs/smdp-test-pki.toml) and, in the directory
    of the same name without the suffix, the layout init_pki writes (certificates and keys).

    Everything follows from the arguments: each key is derived from ``seed`` and the certificate's
    role and curve, serial numbers likewise (the DPtls one from its names too, so that certificates
    for other names never share a serial), every certificate carries ``not_before`` .. ``not_after``
    and is signed with deterministic ECDSA. So the defaults reproduce the committed files byte for
    byte, and other ``tls_names`` give the same CI, EUM, eUICC and SM-DP+ certificates with another
    DPtls certificate. Every subject has O = PUBLIC_TEST_ORGANIZATION. The private keys are as public
    as ``seed``: a lab PKI, never one to trust anywhere else.
    """
    manifest = Path(manifest)
    if manifest.suffix != ".toml":
        raise ValueError(f"{manifest}: the manifest of the public test PKI must end in .toml")
    if not_before.tzinfo is None or not_after.tzinfo is None or not not_before < not_after:
        raise ValueError("not_before and not_after must be timezone-aware, not_before first")
    directory = manifest.with_suffix("")
    names = _unique(normalize_tls_name(n) for n in tls_names)
    _, ein = _check_identity(smdp_oid, eid, None)
    _refuse_to_replace(directory, _layout_files(), overwrite)
    _refuse_to_replace(manifest.parent, [manifest.name], overwrite)
    recipe = _Recipe(seed=seed, organization=PUBLIC_TEST_ORGANIZATION, not_before=not_before, not_after=not_after)
    _write_layout(directory, recipe, smdp_oid=smdp_oid, eid=eid, ein=ein, tls_names=names)
    title = [
        "# smdp PUBLIC TEST PKI (tools/make_test_pki.py; smdp.pki.issue.init_public_test_pki).",
        "# NOT FOR PRODUCTION: its private keys, CI key included, are published with smdp. Trust its CI",
        "# only in a lab LPA or test device. See certs/README.md.",
        f"# Validity (every certificate): {not_before:%Y-%m-%dT%H:%M:%SZ} .. {not_after:%Y-%m-%dT%H:%M:%SZ}",
    ]
    text = manifest_text(smdp_oid, eid, ein, names, prefix=f"{directory.name}/", title=title)
    write_atomic(manifest, text.encode(), 0o644)
    return manifest


def reissue_dptls(directory: Path, names: Sequence[str]) -> list[str] | None:
    """Re-issue the DPtls certificate of the PKI init_pki wrote in ``directory`` so that it also
    names ``names`` (DNS names or IP addresses); return the names the new certificate carries, or
    None when the current one already covers them all (then nothing is written).

    The new certificate keeps the names, SM-DP+ OID, key and issuing CI of the current one, so an
    LPA that trusts the CI trusts it too, and only ``tls/dptls.crt.pem`` changes on disk, replaced
    in one atomic rename with the mode it had: certificate and key never disagree, even after a
    crash. Its validity starts now (see issue_dptls). PkiConfigError when the directory does not
    hold such a PKI (a missing or foreign file, a DPtls certificate no CI of it issued).
    """
    directory = Path(directory)
    cert_path = directory / "tls" / "dptls.crt.pem"
    key_path = directory / "tls" / "dptls.key.pem"
    current = load_certificate(cert_path)
    missing = [name for name in _unique(normalize_tls_name(n) for n in names) if not names_host(current, name)]
    if not missing:
        return None
    key = load_private_key(key_path)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != current.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise PkiConfigError(f"{key_path} is not the key of {cert_path}")
    ci_cert, ci_key = _issuing_ci(directory, current, cert_path)
    oids = [
        entry.value.dotted_string
        for entry in current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if isinstance(entry, x509.RegisteredID)
    ]
    smdp_oid = oids[0] if oids else smdp_oid_of(load_certificate(directory / "nist" / "dpauth.crt.der"))
    new_names = _unique([*certificate_names(current), *missing])
    cert, _ = issue_dptls(ci_cert, ci_key, names=new_names, smdp_oid=smdp_oid, curve=Curve.of(key), key=key)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), stat.S_IMODE(cert_path.stat().st_mode))
    manifest = directory / "pki.toml"
    try:
        text = manifest.read_text()
    except OSError:
        return new_names
    updated = re.sub(r"^# TLS names: .*$", lambda _m: f"# TLS names: {', '.join(new_names)}", text, count=1, flags=re.M)
    if updated != text:  # only the comment; the manifest names files, not host names
        write_atomic(manifest, updated.encode(), stat.S_IMODE(manifest.stat().st_mode))
    return new_names


# --- helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recipe:
    """How a PKI's certificates are made: random keys and serials with the issue_* defaults
    (init_pki), or everything derived from ``seed`` (init_public_test_pki)."""

    seed: str | None = None
    organization: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None

    def options(self, part: str, curve: Curve, *, label: str = "") -> dict[str, Any]:
        """Keyword arguments for the issue_* function of ``part``."""
        options: dict[str, Any] = {"not_before": self.not_before, "not_after": self.not_after}
        if self.organization is not None:
            options["organization"] = self.organization
            options["common_name"] = _PUBLIC_CN.get(part, "").format(curve=_CURVE_LABEL[curve]) or None
        if self.seed is not None:
            options["key"] = self.derived_key(f"{part}/{curve.value}", curve)
            digest = self._digest(f"serial/{part}/{curve.value}/{label}")
            options["serial_number"] = (int.from_bytes(digest[:20], "big") >> 1) or 1  # 1 .. 2**159 - 1
            options["deterministic"] = True
        if part == "euicc":
            options.pop("organization", None)  # the eUICC's O is its EUM's, which nameConstraints permit
        if part == "dptls":
            options.pop("common_name", None)  # the DPtls CN is its first name
        return {k: v for k, v in options.items() if v is not None}

    def derived_key(self, label: str, curve: Curve) -> Key:
        # 1 <= d < n; the bias of reducing 512 bits modulo a 256-bit order is negligible (and these
        # keys are public anyway: what matters is that they are the same everywhere).
        d = int.from_bytes(self._digest(f"key/{label}"), "big") % (curve.order - 1) + 1
        return ec.derive_private_key(d, curve.ec_curve)

    def _digest(self, label: str) -> bytes:
        assert self.seed is not None
        return hashlib.sha512(f"{self.seed}\n{label}".encode()).digest()


_PUBLIC_CN = {
    "ci": "smdp public test CI ({curve})",
    "eum": "smdp public test EUM ({curve})",
    "euicc": "smdp public test eUICC",
    "dpauth": "smdp public test SM-DP+ dpauth ({curve})",
    "dppb": "smdp public test SM-DP+ dppb ({curve})",
}


def _check_identity(smdp_oid: str, eid: str | None, ein: str | None) -> tuple[str | None, str]:
    """Validate the SM-DP+ OID, EID and EIN (ValueError now rather than half-way through)."""
    x509.ObjectIdentifier(smdp_oid)
    if eid is not None and not is_valid_eid(eid):
        raise ValueError(f"{eid!r} is not a valid EID (32 digits, ISO 7064 MOD 97-10 check digits)")
    if ein is None:
        ein = eid[:8] if eid is not None else DEFAULT_EIN
    if eid is not None and not eid.startswith(ein):
        raise ValueError(f"EID {eid} does not start with EIN {ein}")
    return eid, ein


def _layout_files() -> list[str]:
    return [f"{c.value}/{part}.{ext}" for c in Curve for part in _PARTS for ext in ("crt.der", "key.pem")] + list(
        _TLS_FILES
    )


def _refuse_to_replace(directory: Path, files: Sequence[str], overwrite: bool) -> None:
    if overwrite:
        return
    existing = sorted(str(directory / f) for f in files if (directory / f).exists())
    if existing:
        raise FileExistsError(f"a PKI already exists ({existing[0]}); pass overwrite=True to replace it")


def _write_layout(
    directory: Path, recipe: _Recipe, *, smdp_oid: str, eid: str, ein: str, tls_names: list[str]
) -> None:
    """Issue and write both curves' CI, EUM, eUICC, DPauth, DPpb and the (NIST) DPtls certificate."""
    cis: dict[Curve, Issued] = {}
    for curve in Curve:
        sub = directory / curve.value
        sub.mkdir(parents=True, exist_ok=True)
        ci = cis[curve] = issue_ci(curve, **recipe.options("ci", curve))
        eum = issue_eum(*ci, eins=[ein], curve=curve, **recipe.options("eum", curve))
        issued = {
            "ci": ci,
            "eum": eum,
            "euicc": issue_euicc(*eum, eid=eid, curve=curve, **recipe.options("euicc", curve)),
            "dpauth": issue_dpauth(*ci, smdp_oid=smdp_oid, curve=curve, **recipe.options("dpauth", curve)),
            "dppb": issue_dppb(*ci, smdp_oid=smdp_oid, curve=curve, **recipe.options("dppb", curve)),
        }
        for part, (cert, key) in issued.items():
            write_certificate(sub / f"{part}.crt.der", cert, serialization.Encoding.DER)
            write_private_key(sub / f"{part}.key.pem", key)

    (directory / "tls").mkdir(parents=True, exist_ok=True)
    nist_ci = cis[Curve.NIST_P256]
    options = recipe.options("dptls", Curve.NIST_P256, label=",".join(tls_names))
    tls_cert, tls_key = issue_dptls(*nist_ci, names=tls_names, smdp_oid=smdp_oid, **options)
    write_certificate(directory / "tls" / "dptls.crt.pem", tls_cert, serialization.Encoding.PEM)
    write_private_key(directory / "tls" / "dptls.key.pem", tls_key)
    write_certificate(directory / "tls" / "ci.crt.pem", nist_ci[0], serialization.Encoding.PEM)


def _issuing_ci(directory: Path, cert: x509.Certificate, cert_path: Path) -> Issued:
    """The CI certificate and key of the PKI in ``directory`` that issued ``cert``."""
    aki = authority_key_identifier(cert)
    for curve in Curve:
        ci_path = directory / curve.value / "ci.crt.der"
        if not ci_path.is_file():
            continue
        ci = load_certificate(ci_path)
        if aki is not None and subject_key_identifier(ci) == aki:
            return ci, load_private_key(directory / curve.value / "ci.key.pem")
    raise PkiConfigError(f"{cert_path} was not issued by a CI of the PKI in {directory}")


def _unique(names: Any) -> list[str]:
    """``names`` in order, each once."""
    return list(dict.fromkeys(names))


def _sign(builder: x509.CertificateBuilder, key: Key, deterministic: bool) -> x509.Certificate:
    if deterministic:  # RFC 6979 (cryptography 44+ with OpenSSL 3.2+): reproducible signatures
        return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    return builder.sign(key, hashes.SHA256())


def _issue_dp(
    role: Role,
    ci_cert: x509.Certificate,
    ci_key: Key,
    smdp_oid: str,
    curve: Curve,
    not_before: datetime | None,
    not_after: datetime | None,
    key: Key | None,
    *,
    organization: str = "smdp test SM-DP+",
    common_name: str | None = None,
    serial_number: int | None = None,
    deterministic: bool = False,
) -> Issued:
    key = _key_for(curve, key)
    cn = common_name or f"smdp Test SM-DP+ {role.value} ({_CURVE_LABEL[curve]})"
    builder = (
        _builder(ci_cert, _name(O=organization, CN=cn), key, not_before, not_after, 5 * _YEAR, serial_number)
        .add_extension(registered_id_san(smdp_oid), critical=False)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(role_policies(role), critical=True)
        .add_extension(crl_distribution_points(), critical=False)
    )
    return _sign(builder, ci_key, deterministic), key


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
    serial_number: int | None = None,
) -> x509.CertificateBuilder:
    """Serial, names, validity, key and the key identifiers every RSP certificate has; a root
    (``issuer_cert`` None) carries the SKI only (SGP.22 4.5.2.2)."""
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .issuer_name(subject if issuer_cert is None else issuer_cert.subject)
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(serial_number if serial_number is not None else x509.random_serial_number())
        .not_valid_before(not_before if not_before is not None else now - CLOCK_SKEW)
        .not_valid_after(not_after if not_after is not None else now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(authority_key_identifier_of(issuer_cert), critical=False)
    return builder
