"""TLS contexts for ES9+ / ES2+ with the RSP PKI's DPtls certificate (SGP.22 v2.x section 2.6.6).

SGP.22 2.6.6 asks for TLS 1.2 with TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 and
TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 (the server authenticated by CERT.DP.TLS, which chains to
the GSMA CI). TLS 1.3 stays enabled for clients that prefer it. Python's ``ssl`` loads certificates
and keys only from PEM files, while the SGP.26 DPtls certificate is DER, hence the conversion.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smdp.pki.store import ServerCredentials, load_certificate

__all__ = ["SGP22_TLS12_CIPHERS", "client_ssl_context", "server_ssl_context"]

SGP22_TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256"


def server_ssl_context(credentials: ServerCredentials) -> ssl.SSLContext:
    """A server-side context presenting the DPtls certificate and key of ``credentials``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(SGP22_TLS12_CIPHERS)
    cert_path = credentials.tls_cert_path
    if cert_path.read_bytes().lstrip().startswith(b"-----BEGIN"):
        context.load_cert_chain(cert_path, credentials.tls_key_path)
        return context
    # DER certificate: hand ssl a PEM copy (public data) in a private temporary directory.
    pem = load_certificate(cert_path).public_bytes(serialization.Encoding.PEM)
    with tempfile.TemporaryDirectory(prefix="smdp-tls-") as tmp:
        pem_path = Path(tmp) / "dptls.crt.pem"
        pem_path.write_bytes(pem)
        context.load_cert_chain(pem_path, credentials.tls_key_path)
    return context


def client_ssl_context(ca_certs: Sequence[x509.Certificate]) -> ssl.SSLContext:
    """A client-side context trusting exactly ``ca_certs`` (e.g. the GSMA test CI), hostname checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(SGP22_TLS12_CIPHERS)
    for ca in ca_certs:
        context.load_verify_locations(cadata=ca.public_bytes(serialization.Encoding.DER))
    return context
