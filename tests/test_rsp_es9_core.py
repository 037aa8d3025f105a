"""ES9+.InitiateAuthentication (SGP.22 section 5.6.1) tested on the sans-IO core, with its randomness injected.

No server and no database: ``smdp.rsp.es9.initiate_authentication`` gets a JSON body, the server credentials
of a test PKI and the SM-DP+ addresses, and a ``random`` giving the transactionId and the serverChallenge.
With those fixed, transactionId and serverSigned1 are known answers.  The expected serverSigned1 DER is
assembled by hand from the ASN.1 (RSPDefinitions is AUTOMATIC TAGS, so the explicit context tags are
implicit and primitive):

    ServerSigned1 ::= SEQUENCE {            -- '30'
        transactionId   [0] TransactionId,  -- '80'
        euiccChallenge  [1] Octet16,        -- '81'
        serverAddress   [3] UTF8String,     -- '83'
        serverChallenge [4] Octet16         -- '84'
    }

(the same field order and tags as pySim's rsp.asn / osmo-smdpp).  serverSignature1 is ECDSA, randomized, so
it is verified with the DPauth public key rather than compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from smdp.codec import asn1
from smdp.codec.b64 import b64decode, b64encode
from smdp.crypto.ecdsa import Curve
from smdp.pki.store import ServerChain, ServerCredentials, load_server_credentials
from smdp.rsp import es9
from smdp.rsp.status import RspError

ADDRESS = "smdp.example.com"  # 16 characters: serverAddress is '83 10 ...'
ADDRESSES = frozenset({ADDRESS})
TRANSACTION_ID = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
SERVER_CHALLENGE = bytes.fromhex("F0E1D2C3B4A5968778695A4B3C2D1E0F")
EUICC_CHALLENGE = bytes.fromhex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")
UNKNOWN_PKID = bytes.fromhex("00" * 19 + "01")


class FixedRandom:
    """A ``random(n)`` handing out the given values in order, recording what was asked for."""

    def __init__(self, *values: bytes) -> None:
        self.values = list(values)
        self.calls: list[int] = []

    def __call__(self, n: int) -> bytes:
        self.calls.append(n)
        value = self.values.pop(0)
        assert len(value) == n
        return value


def fixed_random() -> FixedRandom:
    return FixedRandom(TRANSACTION_ID, SERVER_CHALLENGE)


@pytest.fixture(scope="module")
def credentials(pki_manifest: Path) -> ServerCredentials:
    return load_server_credentials(pki_manifest)


def chain_of(credentials: ServerCredentials, curve: Curve) -> ServerChain:
    (chain,) = [c for c in credentials.chains if c.curve is curve]
    return chain


def ski(cert: x509.Certificate) -> bytes:
    """The certificate's subjectKeyIdentifier, read with cryptography (not with smdp.pki)."""
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


@pytest.fixture(scope="module")
def nist(credentials: ServerCredentials) -> bytes:
    return ski(chain_of(credentials, Curve.NIST_P256).ci)


@pytest.fixture(scope="module")
def brainpool(credentials: ServerCredentials) -> bytes:
    return ski(chain_of(credentials, Curve.BRAINPOOL_P256R1).ci)


def info1(verification: list[bytes], signing: list[bytes], svn: bytes = bytes([2, 2, 2])) -> bytes:
    """EUICCInfo1 ('BF20') as the virtual eUICC builds it (smdp.euicc.info.euicc_info1)."""
    return asn1.rsp().encode(
        "EUICCInfo1",
        {"svn": svn, "euiccCiPKIdListForVerification": verification, "euiccCiPKIdListForSigning": signing},
    )


def body(euicc_info1: bytes | None, *, challenge: bytes = EUICC_CHALLENGE, address: str = ADDRESS) -> dict[str, Any]:
    value: dict[str, Any] = {"euiccChallenge": b64encode(challenge), "smdpAddress": address}
    if euicc_info1 is not None:
        value["euiccInfo1"] = b64encode(euicc_info1)
    return value


def initiate(credentials: ServerCredentials, request: dict[str, Any], random: FixedRandom | None = None) -> es9.Initiated:
    return es9.initiate_authentication(request, credentials, ADDRESSES, random=random or fixed_random())


def refused(credentials: ServerCredentials, request: dict[str, Any]) -> tuple[str, str]:
    random = fixed_random()
    with pytest.raises(RspError) as caught:
        es9.initiate_authentication(request, credentials, ADDRESSES, random=random)
    assert random.calls == []  # refused before any randomness is drawn
    return caught.value.code.subject_code, caught.value.code.reason_code


def verify_signature1(chain: ServerChain, server_signed1: bytes, server_signature1: bytes) -> None:
    assert server_signature1[:3] == bytes.fromhex("5F3740"), server_signature1[:3].hex()
    raw = server_signature1[3:]
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key = chain.dpauth_cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(der, server_signed1, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature


# --- known answers ------------------------------------------------------------------------------


def test_known_answer_nist(credentials: ServerCredentials, nist: bytes, brainpool: bytes) -> None:
    random = fixed_random()
    result = initiate(credentials, body(info1([nist, brainpool], [nist, brainpool])), random)
    assert random.calls == [16, 16]  # transactionId, then serverChallenge
    response = result.response
    assert set(response) == {"transactionId", "serverSigned1", "serverSignature1", "euiccCiPKIdToBeUsed", "serverCertificate"}
    assert response["transactionId"] == "00112233445566778899AABBCCDDEEFF"

    expected = bytes.fromhex(
        "3048"
        "8010" "00112233445566778899AABBCCDDEEFF"  # transactionId [0]
        "8110" "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"  # euiccChallenge [1]
        "8310" "736D64702E6578616D706C652E636F6D"  # serverAddress [3] "smdp.example.com"
        "8410" "F0E1D2C3B4A5968778695A4B3C2D1E0F"  # serverChallenge [4]
    )
    server_signed1 = b64decode(response["serverSigned1"])
    assert server_signed1.hex().upper() == expected.hex().upper()

    chain = chain_of(credentials, Curve.NIST_P256)
    verify_signature1(chain, server_signed1, b64decode(response["serverSignature1"]))
    assert b64decode(response["euiccCiPKIdToBeUsed"]) == bytes.fromhex("0414") + nist
    assert len(nist) == 20
    server_certificate = b64decode(response["serverCertificate"])
    assert server_certificate == chain.dpauth_cert.public_bytes(Encoding.DER)
    dpauth = x509.load_der_x509_certificate(server_certificate)
    assert dpauth.issuer == chain.ci.subject
    aki = dpauth.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == nist

    # what the caller stores for the session
    assert result.session == es9.SessionKeyValues(
        transaction_id="00112233445566778899AABBCCDDEEFF",
        server_challenge=SERVER_CHALLENGE,
        smdp_address=ADDRESS,
        ci_pkid=nist,
    )


def test_known_answer_brainpool(credentials: ServerCredentials, nist: bytes, brainpool: bytes) -> None:
    result = initiate(credentials, body(info1([brainpool], [brainpool])))
    server_signed1 = b64decode(result.response["serverSigned1"])
    # serverSigned1 does not depend on the CI: the same bytes as under NIST
    assert server_signed1 == bytes.fromhex(
        "3048"
        "801000112233445566778899AABBCCDDEEFF"
        "8110A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"
        "8310736D64702E6578616D706C652E636F6D"
        "8410F0E1D2C3B4A5968778695A4B3C2D1E0F"
    )
    chain = chain_of(credentials, Curve.BRAINPOOL_P256R1)
    verify_signature1(chain, server_signed1, b64decode(result.response["serverSignature1"]))
    assert b64decode(result.response["euiccCiPKIdToBeUsed"]) == bytes.fromhex("0414") + brainpool
    assert b64decode(result.response["serverCertificate"]) == chain.dpauth_cert.public_bytes(Encoding.DER)
    assert result.session.ci_pkid == brainpool


def test_known_answer_long_address(nist: bytes, credentials: ServerCredentials) -> None:
    """A 200-character address: serverAddress and the SEQUENCE take long-form lengths ('81 C8', '82 01 01')."""
    address = "a" * 196 + ".com"
    result = es9.initiate_authentication(
        body(info1([nist], [nist]), address=address), credentials, frozenset({address}), random=fixed_random()
    )
    expected = (
        bytes.fromhex("30820101")  # 3 * 18 + 3 + 200 = 257 bytes of content
        + bytes.fromhex("8010") + TRANSACTION_ID
        + bytes.fromhex("8110") + EUICC_CHALLENGE
        + bytes.fromhex("8381C8") + b"a" * 196 + b".com"
        + bytes.fromhex("8410") + SERVER_CHALLENGE
    )
    assert b64decode(result.response["serverSigned1"]) == expected


def test_server_address_is_signed_as_sent(credentials: ServerCredentials, nist: bytes) -> None:
    """The address matches case-insensitively with an optional ':443', but serverSigned1 carries it verbatim:
    the eUICC compares it with the address the LPA used."""
    result = initiate(credentials, body(info1([nist], [nist]), address="SMDP.Example.com:443"))
    server_signed1 = b64decode(result.response["serverSigned1"])
    assert server_signed1[38:60] == bytes.fromhex("8314") + b"SMDP.Example.com:443"
    assert server_signed1[1] == 0x4C
    assert result.session.smdp_address == "SMDP.Example.com:443"


def test_default_random_is_fresh(credentials: ServerCredentials, nist: bytes) -> None:
    """Without an injected ``random``, transactionId and serverChallenge are 16 fresh random bytes each."""
    request = body(info1([nist], [nist]))
    first = es9.initiate_authentication(request, credentials, ADDRESSES)
    second = es9.initiate_authentication(request, credentials, ADDRESSES)
    assert len(bytes.fromhex(first.session.transaction_id)) == 16 and len(first.session.server_challenge) == 16
    assert first.session.transaction_id != second.session.transaction_id
    assert first.session.server_challenge != second.session.server_challenge
    assert first.session.server_challenge != bytes.fromhex(first.session.transaction_id)


# --- the CI choice (SGP.22 5.6.1: the eUICC's order of preference in euiccCiPKIdListForSigning) ---------


@pytest.mark.parametrize(
    ("verification", "signing", "chosen"),
    [
        (["nist", "brainpool"], ["nist", "brainpool"], "nist"),
        (["nist", "brainpool"], ["brainpool", "nist"], "brainpool"),
        (["brainpool", "nist"], ["nist", "brainpool"], "nist"),  # the verification list's order doesn't matter
        (["nist", "brainpool"], ["unknown", "brainpool", "nist"], "brainpool"),  # an unknown CI is skipped
        (["brainpool"], ["nist", "brainpool"], "brainpool"),  # nist can't be verified by this eUICC: next one
        (["nist", "unknown"], ["brainpool", "nist"], "nist"),
    ],
)
def test_ci_choice_follows_the_signing_list(
    credentials: ServerCredentials, nist: bytes, brainpool: bytes, verification: list[str], signing: list[str], chosen: str
) -> None:
    pkids = {"nist": nist, "brainpool": brainpool, "unknown": UNKNOWN_PKID}
    result = initiate(credentials, body(info1([pkids[n] for n in verification], [pkids[n] for n in signing])))
    assert b64decode(result.response["euiccCiPKIdToBeUsed"]) == bytes.fromhex("0414") + pkids[chosen]
    assert result.session.ci_pkid == pkids[chosen]
    chain = chain_of(credentials, Curve.NIST_P256 if chosen == "nist" else Curve.BRAINPOOL_P256R1)
    assert b64decode(result.response["serverCertificate"]) == chain.dpauth_cert.public_bytes(Encoding.DER)
    verify_signature1(chain, b64decode(result.response["serverSigned1"]), b64decode(result.response["serverSignature1"]))


# --- refusals, with their SGP.22 5.6.1 codes ----------------------------------------------------------


def test_unknown_smdp_address(credentials: ServerCredentials, nist: bytes) -> None:
    assert refused(credentials, body(info1([nist], [nist]), address="other.example.com")) == ("8.8.1", "3.8")
    assert refused(credentials, body(info1([nist], [nist]), address="smdp.example.com:8443")) == ("8.8.1", "3.8")


@pytest.mark.parametrize("svn", [bytes([3, 0, 0]), bytes([3, 1, 0]), bytes([1, 0, 0])])
def test_unsupported_svn(credentials: ServerCredentials, nist: bytes, svn: bytes) -> None:
    assert refused(credentials, body(info1([nist], [nist], svn=svn))) == ("8.8.3", "3.1")


@pytest.mark.parametrize("svn", [bytes([2, 0, 0]), bytes([2, 1, 0]), bytes([2, 3, 1])])
def test_supported_svn(credentials: ServerCredentials, nist: bytes, svn: bytes) -> None:
    assert initiate(credentials, body(info1([nist], [nist], svn=svn))).session.ci_pkid == nist


def test_no_supported_ci_for_signing(credentials: ServerCredentials, nist: bytes, brainpool: bytes) -> None:
    assert refused(credentials, body(info1([nist, brainpool], [UNKNOWN_PKID]))) == ("8.8.2", "3.1")
    assert refused(credentials, body(info1([nist, brainpool], []))) == ("8.8.2", "3.1")


def test_signing_ci_not_verifiable_by_the_euicc(credentials: ServerCredentials, nist: bytes, brainpool: bytes) -> None:
    assert refused(credentials, body(info1([brainpool], [nist]))) == ("8.8.4", "3.7")
    assert refused(credentials, body(info1([UNKNOWN_PKID], [nist, brainpool]))) == ("8.8.4", "3.7")
    assert refused(credentials, body(info1([], [nist]))) == ("8.8.4", "3.7")


@pytest.mark.parametrize("size", [15, 17, 0])
def test_euicc_challenge_of_the_wrong_size(credentials: ServerCredentials, nist: bytes, size: int) -> None:
    assert refused(credentials, body(info1([nist], [nist]), challenge=bytes(range(size)))) == ("1.6", "2.1")


def test_missing_euicc_info1(credentials: ServerCredentials) -> None:
    assert refused(credentials, body(None)) == ("1.6", "2.2")


@pytest.mark.parametrize("field", ["euiccChallenge", "smdpAddress"])
def test_missing_other_fields(credentials: ServerCredentials, nist: bytes, field: str) -> None:
    request = body(info1([nist], [nist]))
    del request[field]
    assert refused(credentials, request) == ("1.6", "2.2")
