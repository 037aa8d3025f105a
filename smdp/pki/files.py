"""Writing the test PKI to disk: atomic writes, key file modes, the manifest (see smdp.pki.store).

Private keys are created 0600 with O_EXCL and renamed into place, so no reader ever sees a key file
that is half-written or, even for a moment, readable by others.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

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


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Create a temporary file with ``mode`` (O_EXCL: nobody else's file, no wider permissions
    at any moment), write, fsync, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have narrowed it; make it exactly ``mode``
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def manifest_text(smdp_oid: str, eid: str, ein: str, tls_names: list[str]) -> str:
    """The pki.toml that init_pki writes for the layout it creates (paths relative to it)."""
    q = json.dumps  # a JSON string with ASCII escapes is a valid TOML basic string
    lines = [
        "# smdp test PKI (smdp.pki.issue.init_pki). Test certificates only; never use in production.",
        f"# EUM permitted EIN: {ein}; eUICC EID (both curves): {eid}",
        f"# TLS names: {', '.join(tls_names)}",
        f"smdp_oid = {q(smdp_oid)}",
        "",
        "[server]",
        f"tls_cert = {q('tls/dptls.crt.pem')}",
        f"tls_key = {q('tls/dptls.key.pem')}",
        f"tls_ca_cert = {q('tls/ci.crt.pem')}",
    ]
    for curve in Curve:
        c = curve.value
        lines += [
            "",
            "[[server.ci]]",
            f"ci_cert = {q(f'{c}/ci.crt.der')}",
            f"dpauth_cert = {q(f'{c}/dpauth.crt.der')}",
            f"dpauth_key = {q(f'{c}/dpauth.key.pem')}",
            f"dppb_cert = {q(f'{c}/dppb.crt.der')}",
            f"dppb_key = {q(f'{c}/dppb.key.pem')}",
        ]
    for curve in Curve:
        c = curve.value
        lines += [
            "",
            "[[euicc]]",
            f"curve = {q(c)}",
            f"euicc_cert = {q(f'{c}/euicc.crt.der')}",
            f"euicc_key = {q(f'{c}/euicc.key.pem')}",
            f"eum_cert = {q(f'{c}/eum.crt.der')}",
            f"ci_cert = {q(f'{c}/ci.crt.der')}",
        ]
    return "\n".join(lines) + "\n"
