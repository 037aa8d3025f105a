"""Writing the test PKI to disk: atomic writes, key file modes, the manifest (see smdp.pki.store).

Private keys are created 0600 with O_EXCL and renamed into place, so no reader ever sees a key file
that is half-written or, even for a moment, readable by others.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdp.atomic import write_atomic  # re-exported: smdp.pki.issue writes the manifest with it
from smdp.crypto.ecdsa import Curve

__all__ = ["manifest_text", "write_atomic", "write_certificate", "write_private_key"]


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600 from the moment the file exists."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, 0o600)


def write_certificate(
    path: Path,
    cert: x509.Certificate,
    encoding: serialization.Encoding = serialization.Encoding.DER,
) -> None:
    """Write ``cert`` (DER or PEM), mode 0644."""
    write_atomic(path, cert.public_bytes(encoding), 0o644)


def manifest_text(
    smdp_oid: str,
    eid: str,
    ein: str,
    tls_names: list[str],
    *,
    prefix: str = "",
    title: list[str] | None = None,
) -> str:
    """The pki.toml for the layout init_pki creates; paths relative to the manifest, under ``prefix``
    (e.g. "smdp-test-pki/" for a manifest beside that directory). ``title``: comment lines replacing
    the first one."""
    q = json.dumps  # a JSON string with ASCII escapes is a valid TOML basic string

    def path(relative: str) -> str:
        return q(prefix + relative)

    lines = [
        *(title or ["# smdp test PKI (smdp.pki.issue.init_pki). Test certificates only; never use in production."]),
        f"# EUM permitted EIN: {ein}; eUICC EID (both curves): {eid}",
        f"# TLS names: {', '.join(tls_names)}",
        f"smdp_oid = {q(smdp_oid)}",
        "",
        "[server]",
        f"tls_cert = {path('tls/dptls.crt.pem')}",
        f"tls_key = {path('tls/dptls.key.pem')}",
        f"tls_ca_cert = {path('tls/ci.crt.pem')}",
    ]
    for curve in Curve:
        c = curve.value
        lines += [
            "",
            "[[server.ci]]",
            f"ci_cert = {path(f'{c}/ci.crt.der')}",
            f"dpauth_cert = {path(f'{c}/dpauth.crt.der')}",
            f"dpauth_key = {path(f'{c}/dpauth.key.pem')}",
            f"dppb_cert = {path(f'{c}/dppb.crt.der')}",
            f"dppb_key = {path(f'{c}/dppb.key.pem')}",
        ]
    for curve in Curve:
        c = curve.value
        lines += [
            "",
            "[[euicc]]",
            f"curve = {q(c)}",
            f"euicc_cert = {path(f'{c}/euicc.crt.der')}",
            f"euicc_key = {path(f'{c}/euicc.key.pem')}",
            f"eum_cert = {path(f'{c}/eum.crt.der')}",
            f"ci_cert = {path(f'{c}/ci.crt.der')}",
        ]
    return "\n".join(lines) + "\n"
