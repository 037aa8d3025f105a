"""Who an ES2+ caller is: its API token, its TLS client certificate (mutual TLS, SGP.22 2.6.6), or both.

SGP.22 2.6.6 secures ES2+ with mutual TLS: the operator is authenticated by its TLS client certificate.
``smdp serve --config`` lets each operator-facing listener choose (``client_auth``):

``token``  the operator presents its API token (``Authorization: Bearer``); no client certificate is asked for.
``mtls``   the TLS handshake requires a client certificate trusted by the listener (smdp.pki.tls builds that
           context); the operator is the one the certificate is configured for.  A token is not needed and,
           if sent, ignored.
``both``   the certificate *and* the token are required, and they must name the same operator: a stolen
           token is useless without the operator's private key, and a certificate alone does not suffice.

A certificate is configured for an operator either *pinned* (that exact certificate, compared byte for
byte) or through its *issuing CA* (the certificate must be issued directly by that CA, and its subject
commonName must be the operator's ``subject_cn``, by default the operator's name).  The TLS layer has
already refused certificates from unknown issuers; what is decided here, sans I/O, is which operator a
certificate that passed belongs to.  A certificate that belongs to none gets HTTP 403, a request with no
credentials at all 401 (see smdp.web.app).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

__all__ = ["CLIENT_AUTH_MODES", "ClientAuth", "ClientCertificate", "fingerprint"]

CLIENT_AUTH_MODES = ("token", "mtls", "both")


def fingerprint(certificate: x509.Certificate | bytes) -> str:
    """SHA-256 of the DER certificate, hex (how logs and `smdp config check` name a certificate)."""
    der = certificate if isinstance(certificate, bytes) else certificate.public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def common_names(certificate: x509.Certificate) -> list[str]:
    return [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


@dataclass(frozen=True)
class ClientCertificate:
    """One operator credential of a listener: a pinned certificate, or an issuing CA and a subject CN."""

    operator: str
    pinned: x509.Certificate | None = None
    ca: x509.Certificate | None = None
    subject_cn: str | None = None  # with ``ca``: the CN required (None: the operator's name)

    def __post_init__(self) -> None:
        if (self.pinned is None) == (self.ca is None):
            raise ValueError("a client certificate entry is either pinned or a CA, not both or neither")

    @property
    def trust_anchor(self) -> x509.Certificate:
        """What the TLS layer trusts for this entry."""
        anchor = self.pinned if self.pinned is not None else self.ca
        assert anchor is not None
        return anchor

    def matches(self, certificate: x509.Certificate, der: bytes) -> bool:
        if self.pinned is not None:
            return der == self.pinned.public_bytes(Encoding.DER)
        assert self.ca is not None
        if certificate.issuer != self.ca.subject:
            return False
        try:
            certificate.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return (self.subject_cn or self.operator) in common_names(certificate)


@dataclass(frozen=True)
class ClientAuth:
    """How one listener authenticates its operator interfaces (ES2+, /admin)."""

    mode: str = "token"
    certificates: tuple[ClientCertificate, ...] = ()
    #: Lab option: the TLS layer ignores validity periods (smdp.pki.tls.VERIFY_NO_CHECK_TIME).
    accept_expired: bool = False

    def __post_init__(self) -> None:
        if self.mode not in CLIENT_AUTH_MODES:
            raise ValueError(f"client_auth {self.mode!r} is not one of {', '.join(CLIENT_AUTH_MODES)}")
        if self.mode != "token" and not self.certificates:
            raise ValueError(f"client_auth {self.mode!r} needs at least one operator certificate")

    @property
    def wants_certificate(self) -> bool:
        return self.mode in ("mtls", "both")

    @property
    def wants_token(self) -> bool:
        return self.mode in ("token", "both")

    @property
    def trust_anchors(self) -> list[x509.Certificate]:
        """The certificates the TLS layer trusts for client certificates (each once)."""
        seen: dict[str, x509.Certificate] = {}
        for entry in self.certificates:
            seen.setdefault(fingerprint(entry.trust_anchor), entry.trust_anchor)
        return list(seen.values())

    def operator_of(self, der: bytes | None) -> str | None:
        """The operator the peer certificate (DER, as the TLS layer hands it over) is configured for; None if
        none, or if it matches entries of different operators (ambiguous, refused rather than guessed).
        A pinned match wins over a CA match."""
        if not der:
            return None
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        for kind in ("pinned", "ca"):
            names = {
                e.operator for e in self.certificates if getattr(e, kind) is not None and e.matches(certificate, der)
            }
            if len(names) == 1:
                return names.pop()
            if names:
                return None
        return None

    @staticmethod
    def expired(der: bytes, now: datetime | None = None) -> bool:
        """Whether the certificate is outside its validity period (accepted only with the lab option)."""
        certificate = x509.load_der_x509_certificate(der)
        now = now or datetime.now(UTC)
        return not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
