"""Loading the SM-DP+'s and the virtual eUICC's credentials from a PKI manifest (TOML).

The manifest names the files of one RSP PKI (SGP.22 v2.x section 4.5: CI, EUM, eUICC, DPauth,
DPpb, DPtls); paths are relative to the manifest's directory unless absolute. Certificates may be
PEM or DER, private keys PEM (PKCS#8 or SEC1). Example (``smdp pki init`` writes one)::

    smdp_oid = "2.999.10"          # optional; default: the registeredID in the DPauth SAN
    [server]
    tls_cert = "tls/dptls.crt.pem"
    tls_key = "tls/dptls.key.pem"
    tls_ca_cert = "tls/ci.crt.pem" # optional: the CI the TLS certificate chains to, for clients
    [[server.ci]]                  # one per CI the server can authenticate under
    ci_cert = "nist/ci.crt.der"
    dpauth_cert = "nist/dpauth.crt.der"
    dpauth_key = "nist/dpauth.key.pem"
    dppb_cert = "nist/dppb.crt.der"
    dppb_key = "nist/dppb.key.pem"
    [[euicc]]                      # virtual eUICC credentials, one per curve
    curve = "nist"
    euicc_cert = "nist/euicc.crt.der"
    euicc_key = "nist/euicc.key.pem"
    eum_cert = "nist/eum.crt.der"
    ci_cert = "nist/ci.crt.der"    # or a list: the first is the eUICC's own CI, others also trusted

Loading checks what is a configuration mistake (missing file, unparsable PEM, key not matching
its certificate, a DP certificate not issued by its CI, the wrong role); it does not check
validity periods, so deliberately expired or out-of-range test credentials still load.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdp.crypto.ecdsa import Curve
from smdp.pki.roles import Role, has_role
from smdp.pki.verify import (
    CertificateError,
    eid_of,
    is_signed_by,
    smdp_oid_of,
    subject_key_identifier,
)

__all__ = [
    "EuiccCredentials",
    "PkiConfigError",
    "ServerChain",
    "ServerCredentials",
    "load_certificate",
    "load_euicc_credentials",
    "load_private_key",
    "load_server_credentials",
]


class PkiConfigError(ValueError):
    """The PKI manifest or a file it names is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class ServerChain:
    """The SM-DP+ credentials under one CI: what ES9+ uses once the eUICC has picked that CI."""

    ci: x509.Certificate
    ci_pkid: bytes  # the CI's subjectKeyIdentifier, as in euiccCiPKIdListForVerification
    curve: Curve
    dpauth_cert: x509.Certificate
    dpauth_key: ec.EllipticCurvePrivateKey = field(repr=False)
    dppb_cert: x509.Certificate
    dppb_key: ec.EllipticCurvePrivateKey = field(repr=False)


@dataclass(frozen=True)
class ServerCredentials:
    """Everything the SM-DP+ signs and serves TLS with."""

    smdp_oid: str
    tls_cert_path: Path
    tls_key_path: Path
    chains: list[ServerChain]
    tls_ca_cert_path: Path | None = None

    def chain_for(self, pkid: bytes) -> ServerChain | None:
        """The chain whose CI has subjectKeyIdentifier ``pkid``, or None."""
        for chain in self.chains:
            if chain.ci_pkid == pkid:
                return chain
        return None

    @property
    def trusted_cis(self) -> list[x509.Certificate]:
        """The CI certificates, in manifest order."""
        return [chain.ci for chain in self.chains]

    @property
    def ci_pkids(self) -> list[bytes]:
        """The CIs' subjectKeyIdentifiers, in manifest order (the server's preference)."""
        return [chain.ci_pkid for chain in self.chains]

    def restricted_to(self, cis: Iterable[str]) -> ServerCredentials:
        """These credentials with only the chains ``cis`` selects, in manifest order: a curve name ("nist",
        "brainpool": every CI on that curve) or a CI's subjectKeyIdentifier in hex (colons allowed).  One
        listener of ``smdp serve --config`` offers initiateAuthentication only these CIs, so that an eUICC
        with none of them gets the SGP.22 5.6.1 error there.  PkiConfigError names a selector that matches
        no CI of the manifest (a typo would otherwise silently serve nothing)."""
        wanted: set[bytes] = set()
        for selector in cis:
            text = selector.strip().lower()
            if text in {curve.value for curve in Curve}:
                matched = {c.ci_pkid for c in self.chains if c.curve.value == text}
            else:
                hex_digits = text.replace(":", "").replace(" ", "")
                try:
                    pkid = bytes.fromhex(hex_digits)
                except ValueError:
                    pkid = b""
                matched = {c.ci_pkid for c in self.chains if c.ci_pkid == pkid}
            if not matched:
                known = ", ".join(f"{c.curve.value} {c.ci_pkid.hex()}" for c in self.chains)
                raise PkiConfigError(f"CI {selector!r} is not in the PKI (its CIs: {known})")
            wanted |= matched
        return replace(self, chains=[c for c in self.chains if c.ci_pkid in wanted])


@dataclass(frozen=True)
class EuiccCredentials:
    """A virtual eUICC's identity: its certificate chain and private key."""

    eid: str
    euicc_cert: x509.Certificate
    euicc_key: ec.EllipticCurvePrivateKey = field(repr=False)
    eum_cert: x509.Certificate
    ci_certs: list[x509.Certificate]
    curve: Curve


# --- files --------------------------------------------------------------------------------------


def load_certificate(path: Path) -> x509.Certificate:
    """An X.509 certificate from a PEM or DER file (sniffed); PkiConfigError if it is neither."""
    data = _read(path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise PkiConfigError(f"{path}: not a PEM or DER X.509 certificate ({exc})") from None


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted EC private key on an SGP.22 curve from PEM (PKCS#8 or SEC1)."""
    data = _read(path)
    try:
        # cryptography skips a leading "EC PARAMETERS" block, as in the SGP.26 key files.
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiConfigError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiConfigError(f"{path}: not an EC private key ({type(key).__name__})")
    try:
        Curve.of(key)
    except ValueError as exc:
        raise PkiConfigError(f"{path}: {exc}") from None
    return key


# --- manifests ----------------------------------------------------------------------------------

_SERVER_KEYS = {"tls_cert", "tls_key", "tls_ca_cert", "ci"}
_CHAIN_KEYS = {"ci_cert", "dpauth_cert", "dpauth_key", "dppb_cert", "dppb_key"}
_EUICC_KEYS = {"curve", "euicc_cert", "euicc_key", "eum_cert", "ci_cert"}


def load_server_credentials(manifest: Path) -> ServerCredentials:
    """Load and cross-check the [server] part of ``manifest``."""
    manifest = Path(manifest)
    doc = _read_manifest(manifest)
    server = _table(doc, "server", manifest)
    _no_unknown_keys(server, _SERVER_KEYS, "[server]", manifest)
    entries = server.get("ci")
    if not isinstance(entries, list) or not entries:
        raise PkiConfigError(f"{manifest}: [[server.ci]] needs at least one entry")

    chains = [_load_chain(entry, i, manifest) for i, entry in enumerate(entries)]
    pkids = [c.ci_pkid for c in chains]
    if len(set(pkids)) != len(pkids):
        raise PkiConfigError(
            f"{manifest}: the same CI appears in more than one [[server.ci]] entry"
        )

    oids = {smdp_oid_of(c.dpauth_cert) for c in chains}
    smdp_oid = doc.get("smdp_oid")
    if smdp_oid is None:
        if len(oids) != 1:
            raise PkiConfigError(
                f"{manifest}: the DPauth certificates name different SM-DP+ OIDs {sorted(oids)}"
            )
        smdp_oid = oids.pop()
    elif not isinstance(smdp_oid, str) or oids != {smdp_oid}:
        # The LPA compares the activation code's OID with the DPauth SAN (SGP.22 3.1.2): they must agree.
        raise PkiConfigError(
            f"{manifest}: smdp_oid {smdp_oid!r} differs from the DPauth certificates' OIDs {sorted(oids)}"
        )

    tls_cert_path = _path(server, "tls_cert", manifest, "[server]")
    tls_key_path = _path(server, "tls_key", manifest, "[server]")
    _check_pair(load_certificate(tls_cert_path), load_private_key(tls_key_path), tls_key_path)
    tls_ca = None
    if "tls_ca_cert" in server:
        tls_ca = _path(server, "tls_ca_cert", manifest, "[server]")
        load_certificate(tls_ca)
    return ServerCredentials(
        smdp_oid=smdp_oid,
        tls_cert_path=tls_cert_path,
        tls_key_path=tls_key_path,
        chains=chains,
        tls_ca_cert_path=tls_ca,
    )


def load_euicc_credentials(manifest: Path, curve: str | Curve) -> EuiccCredentials:
    """Load the [[euicc]] entry of ``manifest`` for ``curve`` ("nist" or "brainpool")."""
    manifest = Path(manifest)
    try:
        wanted = curve if isinstance(curve, Curve) else Curve(curve)
    except ValueError:
        raise PkiConfigError(
            f"unknown curve {curve!r}; use one of {[c.value for c in Curve]}"
        ) from None
    doc = _read_manifest(manifest)
    entries = doc.get("euicc")
    if not isinstance(entries, list):
        raise PkiConfigError(f"{manifest}: no [[euicc]] entries")
    matching = [e for e in entries if isinstance(e, dict) and e.get("curve") == wanted.value]
    if len(matching) != 1:
        found = "no" if not matching else "more than one"
        raise PkiConfigError(f"{manifest}: {found} [[euicc]] entry with curve = {wanted.value!r}")
    entry = matching[0]
    where = f"[[euicc]] curve = {wanted.value!r}"
    _no_unknown_keys(entry, _EUICC_KEYS, where, manifest)

    euicc_path = _path(entry, "euicc_cert", manifest, where)
    euicc_cert = load_certificate(euicc_path)
    euicc_key = load_private_key(_path(entry, "euicc_key", manifest, where))
    _check_pair(euicc_cert, euicc_key, euicc_path)
    if Curve.of(euicc_key) is not wanted:
        raise PkiConfigError(
            f"{euicc_path}: key is on {Curve.of(euicc_key).value}, entry says {wanted.value}"
        )
    eid = eid_of(euicc_cert)
    if eid is None:
        raise PkiConfigError(f"{euicc_path}: subject has no single serialNumber (EID)")

    ci_field = entry.get("ci_cert")
    ci_values = [ci_field] if isinstance(ci_field, str) else ci_field
    if (
        not isinstance(ci_values, list)
        or not ci_values
        or not all(isinstance(v, str) for v in ci_values)
    ):
        raise PkiConfigError(
            f"{manifest}: {where}: ci_cert must be a path or a non-empty list of paths"
        )
    ci_certs = [load_certificate(_resolve(v, manifest)) for v in ci_values]
    for path, ci in zip(ci_values, ci_certs, strict=True):
        _check_ci(ci, _resolve(path, manifest))
    return EuiccCredentials(
        eid=eid,
        euicc_cert=euicc_cert,
        euicc_key=euicc_key,
        eum_cert=load_certificate(_path(entry, "eum_cert", manifest, where)),
        ci_certs=ci_certs,
        curve=wanted,
    )


# --- helpers ------------------------------------------------------------------------------------


def _load_chain(entry: Any, index: int, manifest: Path) -> ServerChain:
    where = f"[[server.ci]] entry {index + 1}"
    if not isinstance(entry, dict):
        raise PkiConfigError(f"{manifest}: {where} is not a table")
    _no_unknown_keys(entry, _CHAIN_KEYS, where, manifest)
    ci_path = _path(entry, "ci_cert", manifest, where)
    ci = load_certificate(ci_path)
    _check_ci(ci, ci_path)
    loaded: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}
    for part, role in (("dpauth", Role.DP_AUTH), ("dppb", Role.DP_PB)):
        cert_path = _path(entry, f"{part}_cert", manifest, where)
        cert = load_certificate(cert_path)
        key = load_private_key(_path(entry, f"{part}_key", manifest, where))
        _check_pair(cert, key, cert_path)
        if not has_role(cert, role):
            raise PkiConfigError(f"{cert_path}: certificatePolicies lacks id-rspRole-{role.value}")
        if not is_signed_by(cert, ci):
            raise PkiConfigError(f"{cert_path}: not signed by the CI in {ci_path}")
        loaded[part] = (cert, key)
    try:
        smdp_oid_of(loaded["dpauth"][0])
    except CertificateError as exc:
        raise PkiConfigError(f"{manifest}: {where}: {exc}") from None
    return ServerChain(
        ci=ci,
        ci_pkid=subject_key_identifier(ci),
        curve=Curve.of(ci.public_key()),
        dpauth_cert=loaded["dpauth"][0],
        dpauth_key=loaded["dpauth"][1],
        dppb_cert=loaded["dppb"][0],
        dppb_key=loaded["dppb"][1],
    )


def _check_ci(ci: x509.Certificate, path: Path) -> None:
    """A trust anchor must at least be a self-signed CI root with a key identifier."""
    if not has_role(ci, Role.CI):
        raise PkiConfigError(
            f"{path}: certificatePolicies lacks id-rspRole-ci; not a CI certificate"
        )
    if not is_signed_by(ci, ci):
        raise PkiConfigError(
            f"{path}: a CI certificate must be self-signed (ECDSA-SHA256, SGP.22 curve)"
        )
    try:
        subject_key_identifier(ci)
    except CertificateError as exc:
        raise PkiConfigError(f"{path}: {exc}") from None


def _check_pair(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path) -> None:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise PkiConfigError(
            f"{cert_path}: the private key configured with it does not match this certificate"
        )


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PkiConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise PkiConfigError(f"{path}: cannot read ({exc.strerror})") from None


def _read_manifest(manifest: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(_read(manifest).decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PkiConfigError(f"{manifest}: not valid TOML ({exc})") from None


def _table(doc: dict[str, Any], name: str, manifest: Path) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise PkiConfigError(f"{manifest}: missing [{name}] table")
    return value


def _no_unknown_keys(table: dict[str, Any], allowed: set[str], where: str, manifest: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PkiConfigError(
            f"{manifest}: {where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}"
        )


def _path(table: dict[str, Any], key: str, manifest: Path, where: str) -> Path:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise PkiConfigError(f"{manifest}: {where}: {key} must be a file path")
    path = _resolve(value, manifest)
    if not path.is_file():
        raise PkiConfigError(f"{path}: file not found ({where} {key} in {manifest})")
    return path


def _resolve(value: str, manifest: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else manifest.parent / path
