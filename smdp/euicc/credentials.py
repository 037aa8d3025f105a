"""Another identity for the virtual eUICC: certificates and key loaded from files instead of the PKI
manifest's, for certificate negative tests (an expired EUM, an EUM from another CI, an eUICC
certificate outside its EUM's EID range ...) without writing a manifest for each case.

Only what is given is replaced; the rest stays the manifest's. The files are checked just enough for
the eUICC to work with them (readable, the key matches the eUICC certificate, the certificate names
an EID, a CI has a key identifier): whether the chain is *valid* is exactly what such tests leave to
the SM-DP+ to decide, so nothing else is checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from smdp.crypto.ecdsa import Curve
from smdp.pki.store import EuiccCredentials, PkiConfigError, load_certificate, load_private_key
from smdp.pki.verify import CertificateError, eid_of, subject_key_identifier

__all__ = ["IdentityFiles", "apply_identity"]


@dataclass(frozen=True)
class IdentityFiles:
    """Files replacing parts of the manifest's eUICC credentials (None: keep the manifest's)."""

    euicc_cert: Path | None = None
    euicc_key: Path | None = None
    eum_cert: Path | None = None
    ci_certs: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return any((self.euicc_cert, self.euicc_key, self.eum_cert, self.ci_certs))


def _public(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def apply_identity(base: EuiccCredentials, files: IdentityFiles) -> EuiccCredentials:
    """``base`` with the given files in place of its certificates and key.

    Raises PkiConfigError naming the file for one that cannot be read or used, and for an eUICC
    key that does not belong to the eUICC certificate (the eUICC could not sign anything the
    SM-DP+ would verify with that certificate, which is not the negative test anybody means)."""
    credentials = base
    if files.euicc_cert is not None:
        cert = load_certificate(files.euicc_cert)
        eid = eid_of(cert)
        if eid is None:
            raise PkiConfigError(f"{files.euicc_cert}: subject has no single serialNumber (EID); not an eUICC certificate")
        credentials = replace(credentials, euicc_cert=cert, eid=eid)
    if files.euicc_key is not None:
        credentials = replace(credentials, euicc_key=load_private_key(files.euicc_key))
    if _public(credentials.euicc_key.public_key()) != _public(credentials.euicc_cert.public_key()):
        if files.euicc_key is not None:
            where = f"{files.euicc_key}: this key does not match the eUICC certificate"
            where += f" {files.euicc_cert}" if files.euicc_cert is not None else " of the PKI manifest (give --euicc-cert too)"
        else:
            where = f"{files.euicc_cert}: the eUICC key of the PKI manifest does not match this certificate (give --euicc-key too)"
        raise PkiConfigError(where)
    try:
        curve = Curve.of(credentials.euicc_key)
    except ValueError as exc:
        raise PkiConfigError(f"{files.euicc_key or files.euicc_cert}: {exc}") from None
    if curve is not base.curve:
        raise PkiConfigError(
            f"{files.euicc_key or files.euicc_cert}: the key is on {curve.value}, this eUICC is {base.curve.value} (see --curve)"
        )
    if files.eum_cert is not None:
        credentials = replace(credentials, eum_cert=load_certificate(files.eum_cert))
    if files.ci_certs:
        cis = []
        for path in files.ci_certs:
            ci = load_certificate(path)
            try:
                subject_key_identifier(ci)  # what euiccCiPKIdListForVerification/Signing list
            except CertificateError as exc:
                raise PkiConfigError(f"{path}: {exc}") from None
            cis.append(ci)
        credentials = replace(credentials, ci_certs=cis)
    return credentials
