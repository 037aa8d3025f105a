"""ES9+.AuthenticateClient answers certificate faults with the codes of SGP.22 section 5.6.2.

Each case goes through the sans-IO ``verify_authenticate_client`` with a complete, correctly signed
AuthenticateServerResponse, so only the certificates differ from a request that succeeds; the
certificate verification itself is SGP.22 4.5.2.2 (smdp.pki.verify).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID

from smdp.codec import asn1
from smdp.codec.b64 import b64encode
from smdp.codec.tlv import tlv
from smdp.crypto import ecdsa
from smdp.crypto.ecdsa import Curve, generate_private_key
from smdp.pki.eid import eid_check_digits
from smdp.pki.issue import issue_ci, issue_euicc, issue_eum
from smdp.rsp.es9 import SessionKeyValues, verify_authenticate_client
from smdp.rsp.status import RspError
from tests.test_pki_verify import reissued

EIN = "89049032"
BODY = EIN + "1234512345123456789012"
EID = BODY + eid_check_digits(BODY)
T0 = datetime(2030, 6, 1, tzinfo=UTC)
VALID = {"not_before": T0 - timedelta(days=3650), "not_after": T0 + timedelta(days=3650)}
EXPIRED = {"not_before": T0 - timedelta(days=3650), "not_after": T0 - timedelta(days=1)}
ADDRESS = "smdp.example"

# A keyUsage whose extnValue is a NULL instead of a BIT STRING: the certificate is DER and loads,
# but cryptography only raises (ValueError) when its extensions are first read.
MALFORMED_KEY_USAGE = x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x05\x00")


@dataclass
class World:
    curve: Curve
    ci: x509.Certificate
    ci_key: ec.EllipticCurvePrivateKey
    eum: x509.Certificate
    eum_key: ec.EllipticCurvePrivateKey
    euicc: x509.Certificate
    euicc_key: ec.EllipticCurvePrivateKey
    session: SessionKeyValues


@pytest.fixture(scope="module", params=list(Curve), ids=lambda c: c.value)
def world(request: pytest.FixtureRequest) -> World:
    curve = request.param
    ci, ci_key = issue_ci(curve, **VALID)
    eum, eum_key = issue_eum(ci, ci_key, eins=[EIN], curve=curve, **VALID)
    euicc, euicc_key = issue_euicc(eum, eum_key, eid=EID, curve=curve, **VALID)
    session = SessionKeyValues(
        transaction_id=os.urandom(16).hex().upper(),
        server_challenge=os.urandom(16),
        smdp_address=ADDRESS,
        ci_pkid=ci.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
    )
    return World(curve, ci, ci_key, eum, eum_key, euicc, euicc_key, session)


def _euicc_info2(ci_pkid: bytes) -> dict[str, object]:
    return {
        "profileVersion": b"\x02\x03\x00",
        "svn": b"\x02\x02\x02",
        "euiccFirmwareVer": b"\x01\x00\x00",
        "extCardResource": bytes.fromhex("810100820400010000830200FF"),
        "uiccCapability": (b"\x06\x7f\x36\xc0", 26),
        "rspCapability": (b"\x1c", 6),
        "euiccCiPKIdListForVerification": [ci_pkid],
        "euiccCiPKIdListForSigning": [ci_pkid],
        "ppVersion": b"\x01\x00\x00",
        "sasAcreditationNumber": "TEST-SAS",
    }


def authenticate(
    world: World,
    euicc: x509.Certificate,
    eum: x509.Certificate,
    *,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
    now: datetime = T0,
) -> str:
    """Run verify_authenticate_client on an AuthenticateServerResponse carrying ``euicc`` and
    ``eum``, signed with the eUICC key; the EID on success."""
    signed1 = asn1.rsp().encode(
        "EuiccSigned1",
        {
            "transactionId": bytes.fromhex(world.session.transaction_id),
            "serverAddress": ADDRESS,
            "serverChallenge": world.session.server_challenge,
            "euiccInfo2": _euicc_info2(world.session.ci_pkid),
            "ctxParams1": (
                "ctxParamsForCommonAuthentication",
                {"matchingId": "CERT-1", "deviceInfo": {"tac": b"\x35\x29\x06\x11", "deviceCapabilities": {}}},
            ),
        },
    )
    signature = ecdsa.sign(signing_key or world.euicc_key, signed1)
    ok = signed1 + tlv(0x5F37, signature) + euicc.public_bytes(Encoding.DER) + eum.public_bytes(Encoding.DER)
    body = {"transactionId": world.session.transaction_id, "authenticateServerResponse": b64encode(tlv(0xBF38, tlv(0xA0, ok)))}
    return verify_authenticate_client(body, world.session, [world.ci], now).eid


def codes_of(world: World, euicc: x509.Certificate, eum: x509.Certificate, **kwargs: object) -> tuple[str, str]:
    with pytest.raises(RspError) as caught:
        authenticate(world, euicc, eum, **kwargs)  # type: ignore[arg-type]
    return caught.value.code.subject_code, caught.value.code.reason_code


def ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def aki(key_identifier: bytes) -> tuple[x509.ExtensionType, bool]:
    return x509.AuthorityKeyIdentifier(key_identifier, None, None), False


def test_genuine_chain_is_accepted(world: World) -> None:
    # The harness itself: with untouched certificates the whole AuthenticateClient check passes.
    assert authenticate(world, world.euicc, world.eum) == EID


def test_self_signed_eum_is_an_invalid_eum_certificate(world: World) -> None:
    key = generate_private_key(world.curve)
    own_ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    eum = reissued(
        world.eum,
        key,
        issuer=world.eum.subject,
        key=key,
        drop=(ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER),
        add=((own_ski, False), aki(own_ski.digest)),
    )
    euicc = reissued(world.euicc, key, drop=(ExtensionOID.AUTHORITY_KEY_IDENTIFIER,), add=(aki(own_ski.digest),))
    assert codes_of(world, euicc, eum) == ("8.1.2", "6.1")


def test_eum_whose_aki_names_an_unknown_ci_is_unknown_ci(world: World) -> None:
    other_ci, other_key = issue_ci(world.curve, common_name="Foreign CI", **VALID)
    eum, eum_key = issue_eum(other_ci, other_key, eins=[EIN], curve=world.curve, **VALID)
    euicc, euicc_key = issue_euicc(eum, eum_key, eid=EID, curve=world.curve, **VALID)
    assert eum.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski(other_ci)
    assert codes_of(world, euicc, eum, signing_key=euicc_key) == ("8.11.1", "3.9")


def test_eum_without_aki_from_an_unknown_issuer_is_an_invalid_eum_certificate(world: World) -> None:
    nobody = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nobody's CI")])
    eum = reissued(world.eum, world.ci_key, issuer=nobody, drop=(ExtensionOID.AUTHORITY_KEY_IDENTIFIER,))
    assert codes_of(world, world.euicc, eum) == ("8.1.2", "6.1")


def test_expired_eum_with_a_wrong_profile_is_an_expired_eum_certificate(world: World) -> None:
    # Signed by the CI, but no CA and no keyUsage: the validity period is checked first (4.5.2.2).
    eum = reissued(
        world.eum,
        world.ci_key,
        drop=(ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE),
        not_after=EXPIRED["not_after"],
    )
    assert codes_of(world, world.euicc, eum) == ("8.1.2", "6.3")
    # ... and while it is still valid, the wrong profile is what gets reported.
    assert codes_of(world, world.euicc, eum, now=T0 - timedelta(days=2)) == ("8.1.2", "6.1")


def test_expired_euicc_with_a_wrong_profile_is_an_expired_euicc_certificate(world: World) -> None:
    euicc = reissued(
        world.euicc, world.eum_key, drop=(ExtensionOID.CERTIFICATE_POLICIES,), not_after=EXPIRED["not_after"]
    )
    assert codes_of(world, euicc, world.eum) == ("8.1.3", "6.3")
    assert codes_of(world, euicc, world.eum, now=T0 - timedelta(days=2)) == ("8.1.3", "6.1")


def test_eum_with_an_undecodable_extension_is_an_invalid_eum_certificate(world: World) -> None:
    eum = reissued(world.eum, world.ci_key, drop=(ExtensionOID.KEY_USAGE,), add=((MALFORMED_KEY_USAGE, True),))
    with pytest.raises(ValueError):
        eum.extensions  # noqa: B018 - what used to escape as an unhandled error
    assert codes_of(world, world.euicc, eum) == ("8.1.2", "6.1")


def test_euicc_with_an_undecodable_extension_is_an_invalid_euicc_certificate(world: World) -> None:
    euicc = reissued(world.euicc, world.eum_key, drop=(ExtensionOID.KEY_USAGE,), add=((MALFORMED_KEY_USAGE, True),))
    assert codes_of(world, euicc, world.eum) == ("8.1.3", "6.1")


def test_euicc_with_an_undecodable_aki_is_an_invalid_euicc_certificate(world: World) -> None:
    malformed_aki = x509.UnrecognizedExtension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, b"\x04\x01\x00")
    euicc = reissued(
        world.euicc, world.eum_key, drop=(ExtensionOID.AUTHORITY_KEY_IDENTIFIER,), add=((malformed_aki, False),)
    )
    assert codes_of(world, euicc, world.eum) == ("8.1.3", "6.1")
