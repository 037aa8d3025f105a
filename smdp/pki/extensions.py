"""X.509 extension values of the RSP certificate profiles (SGP.22 v2.x section 4.5.2.1).

The building blocks smdp.pki.issue assembles into CI, EUM, eUICC and SM-DP+ certificates, with the
criticality SGP.22 gives them (and the GSMA SGP.26 test certificates carry).
"""

from __future__ import annotations

from cryptography import x509

from smdp.pki.roles import Role

__all__ = [
    "CRL_URL",
    "authority_key_identifier_of",
    "crl_distribution_points",
    "key_usage",
    "registered_id_san",
    "role_policies",
]

# The profile has a CRL distribution point; this one resolves nowhere (example.com), on purpose.
CRL_URL = "http://ci.test.example.com/smdp-test-ci.crl"


def authority_key_identifier_of(
    issuer_cert: x509.Certificate,
) -> x509.AuthorityKeyIdentifier:
    """The AKI of a certificate issued by ``issuer_cert``."""
    # keyIdentifier only (no issuer name / serial), as SGP.22 4.5.2.1 and SGP.26 have it.
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier(ski.digest, None, None)


def role_policies(role: Role) -> x509.CertificatePolicies:
    """certificatePolicies naming exactly the RSP role ``role``."""
    return x509.CertificatePolicies([x509.PolicyInformation(role.oid, None)])


def key_usage(
    *,
    digital_signature: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    """keyUsage with only the named bits set."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def registered_id_san(oid: str) -> x509.SubjectAlternativeName:
    """subjectAltName holding one registeredID, e.g. the SM-DP+ OID."""
    return x509.SubjectAlternativeName([x509.RegisteredID(x509.ObjectIdentifier(oid))])


def crl_distribution_points() -> x509.CRLDistributionPoints:
    """One distribution point, CRL_URL."""
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)]
    )
