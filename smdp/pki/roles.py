"""RSP certificate roles and their certificatePolicies OIDs (SGP.22 v2.x section 4.5.2.1, Annex H id-rspRole).

Every certificate of the RSP PKI names its role by carrying exactly one policy OID under
id-rspRole = {joint-iso-itu-t(2) international-organizations(23) gsma(146) rsp(1) cert-objects(2) 1}.
A verifier checks the role, not the subject name, to tell an EUM from an SM-DP+.
"""

from __future__ import annotations

import enum

from cryptography import x509

__all__ = ["ID_RSP_ROLE", "Role", "has_role"]

ID_RSP_ROLE = "2.23.146.1.2.1"


class Role(enum.StrEnum):
    """The role of a certificate in the RSP PKI; the value is the spec's id-rspRole-<value> suffix."""

    CI = "ci"
    EUICC = "euicc"
    EUM = "eum"
    DP_TLS = "dp-tls"
    DP_AUTH = "dp-auth"
    DP_PB = "dp-pb"
    DS_TLS = "ds-tls"
    DS_AUTH = "ds-auth"

    @property
    def oid(self) -> x509.ObjectIdentifier:
        """The certificatePolicies OID id-rspRole-<role> (the v2 arcs 0..7 of id-rspRole)."""
        return x509.ObjectIdentifier(f"{ID_RSP_ROLE}.{_ARC[self]}")


_ARC = {
    Role.CI: 0,
    Role.EUICC: 1,
    Role.EUM: 2,
    Role.DP_TLS: 3,
    Role.DP_AUTH: 4,
    Role.DP_PB: 5,
    Role.DS_TLS: 6,
    Role.DS_AUTH: 7,
}


def has_role(cert: x509.Certificate, role: Role) -> bool:
    """True if ``cert`` has a certificatePolicies extension listing id-rspRole-<role>."""
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return False
    return any(p.policy_identifier == role.oid for p in policies)
