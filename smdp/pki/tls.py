"""TLS contexts for ES9+ / ES2+ with the RSP PKI's DPtls certificate (SGP.22 v2.x section 2.6.6).

SGP.22 2.6.6 asks for TLS 1.2 with TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 and
TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 (the server authenticated by CERT.DP.TLS, which chains to
the GSMA CI). TLS 1.3 stays enabled for clients that prefer it. ES2+ may also authenticate the operator
by its TLS client certificate (mutual TLS, :func:`mutual_tls_server_context`). Python's ``ssl`` loads certificates
and keys only from PEM files, while the SGP.26 DPtls certificate is DER, hence the conversion.

The name helpers say which host names a DPtls certificate is good for: an LPA verifies the SM-DP+
address of the activation code against the certificate's subjectAltName (RFC 6125: DNS names, IP
addresses as iPAddress entries, never the subject CN), so ``smdp serve --address HOST`` needs HOST there.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smdp.pki.store import ServerCredentials, load_certificate

__all__ = [
    "SGP22_TLS12_CIPHERS",
    "VERIFY_NO_CHECK_TIME",
    "address_host",
    "certificate_names",
    "client_ssl_context",
    "mutual_tls_server_context",
    "names_host",
    "normalize_tls_name",
    "server_ssl_context",
    "tls_server_context",
]

SGP22_TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256"


#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify certificates without looking at their validity periods.  The
#: ssl module has no name for it, but VerifyFlags passes any OpenSSL flag through.
VERIFY_NO_CHECK_TIME = 0x200000


def server_ssl_context(credentials: ServerCredentials) -> ssl.SSLContext:
    """A server-side context presenting the DPtls certificate and key of ``credentials``."""
    return tls_server_context(credentials.tls_cert_path, credentials.tls_key_path)


def tls_server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server-side context presenting the certificate (PEM or DER) and key in these files: the PKI's DPtls,
    or the certificate one listener of ``smdp serve --config`` names."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(SGP22_TLS12_CIPHERS)
    if cert_path.read_bytes().lstrip().startswith(b"-----BEGIN"):
        context.load_cert_chain(cert_path, key_path)
        return context
    # DER certificate: hand ssl a PEM copy (public data) in a private temporary directory.
    pem = load_certificate(cert_path).public_bytes(serialization.Encoding.PEM)
    with tempfile.TemporaryDirectory(prefix="smdp-tls-") as tmp:
        pem_path = Path(tmp) / "dptls.crt.pem"
        pem_path.write_bytes(pem)
        context.load_cert_chain(pem_path, key_path)
    return context


def mutual_tls_server_context(
    cert_path: Path, key_path: Path, client_trust: Sequence[x509.Certificate], *, ignore_validity: bool = False
) -> ssl.SSLContext:
    """A server-side context that also authenticates the client (ES2+ over mutual TLS, SGP.22 2.6.6): the
    handshake fails unless the client presents a certificate that chains to one of ``client_trust`` (the
    operators' issuing CAs and pinned certificates, nothing else: not the system store).

    A pinned operator certificate is usually not self-signed; VERIFY_X509_PARTIAL_CHAIN lets OpenSSL accept
    a chain that ends at any certificate of ``client_trust`` instead of requiring a self-signed root.  Which
    operator a certificate belongs to is decided after the handshake (smdp.web.client_auth), which also
    checks a pinned certificate byte for byte.  ``ignore_validity`` (the lab option
    accept_expired_client_certs) sets X509_V_FLAG_NO_CHECK_TIME: expired and not-yet-valid certificates pass."""
    if not client_trust:
        raise ValueError("mutual TLS needs at least one client CA or pinned client certificate")
    context = tls_server_context(cert_path, key_path)
    context.verify_mode = ssl.CERT_REQUIRED
    for certificate in client_trust:
        context.load_verify_locations(cadata=certificate.public_bytes(serialization.Encoding.DER))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if ignore_validity:
        context.verify_flags |= VERIFY_NO_CHECK_TIME
    return context


def client_ssl_context(ca_certs: Sequence[x509.Certificate]) -> ssl.SSLContext:
    """A client-side context trusting exactly ``ca_certs`` (e.g. the GSMA test CI), hostname checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(SGP22_TLS12_CIPHERS)
    for ca in ca_certs:
        context.load_verify_locations(cadata=ca.public_bytes(serialization.Encoding.DER))
    return context


# --- which names a TLS certificate is good for ------------------------------------------------------

# One DNS label (RFC 1123: letters, digits, inner hyphens; at most 63 characters).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize_tls_name(value: str) -> str:
    """``value`` as a subjectAltName entry: an IP literal in its canonical form (brackets of
    ``[::1]`` dropped), else a lower-case DNS name without a trailing dot, whose first label may be
    ``*``. ValueError for anything else (a port, a URL, spaces, an underscore, non-ASCII: give the
    IDNA A-label ``xn--...`` of an internationalised name)."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.lower().removesuffix(".")
    labels = name.split(".")
    if labels[0] == "*" and len(labels) > 2:  # a wildcard for one label, never for a whole suffix
        labels = labels[1:]
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a DNS name or an IP address (give the host alone, without a port or scheme)"
        )
    return name


def address_host(address: str) -> str:
    """The host of an SM-DP+ address ``HOST[:PORT]`` (``[V6]:PORT`` for IPv6), normalised as
    :func:`normalize_tls_name` does; ValueError if it is none."""
    text = address.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            raise ValueError(f"{address!r} is not HOST[:PORT]")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not port.isdigit():
            raise ValueError(f"{address!r} is not HOST[:PORT]")
    else:
        host = text  # a name, or an IPv6 literal without brackets (and so without a port)
    return normalize_tls_name(host)


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses in ``cert``'s subjectAltName, in order (IPs as text)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for entry in san:
        if isinstance(entry, x509.DNSName):
            names.append(entry.value.lower())
        elif isinstance(entry, x509.IPAddress) and not isinstance(
            entry.value, (ipaddress.IPv4Network, ipaddress.IPv6Network)
        ):
            names.append(str(entry.value))
    return names


def names_host(cert: x509.Certificate, host: str) -> bool:
    """True if a client connecting to ``host`` accepts ``cert``'s subjectAltName (RFC 6125: an exact
    DNS name, a ``*.`` wildcard standing for exactly one leftmost label, or an equal IP address)."""
    wanted = normalize_tls_name(host)
    try:
        ip = ipaddress.ip_address(wanted)
    except ValueError:
        ip = None
    for name in certificate_names(cert):
        if ip is not None:
            try:
                if ipaddress.ip_address(name) == ip:
                    return True
            except ValueError:
                pass
            continue
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == name[2:]:
            return True
    return False
