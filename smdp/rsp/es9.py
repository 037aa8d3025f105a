"""ES9+ common mutual authentication and download preparation, SGP.22 sections 3.1.2-3.1.3 and 5.6.1-5.6.3.

Sans-IO: each function takes the parsed JSON request, the session values the caller loaded, and the
server's credentials; it returns the values to store and the JSON fields to answer.  Signatures are
verified over the exact bytes the eUICC signed (taken from the received TLVs, never re-encoded).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from smdp.codec import asn1, b64
from smdp.codec.tlv import TlvError, iter_tlvs, read_tlv, tlv
from smdp.crypto import ecdsa
from smdp.pki import verify as pki
from smdp.pki.store import ServerChain, ServerCredentials
from smdp.rsp import fields
from smdp.rsp.status import (
    CI_PUBLIC_KEY_UNKNOWN,
    EUICC_CERTIFICATE_EXPIRED,
    EUICC_CERTIFICATE_INVALID,
    EUICC_SIGNATURE_INVALID,
    EUM_CERTIFICATE_EXPIRED,
    EUM_CERTIFICATE_INVALID,
    INVALID_INPUT,
    INVALID_SMDP_ADDRESS,
    NO_DPAUTH_FOR_CI,
    SECURITY_CONFIGURATION_NOT_SUPPORTED,
    TRANSACTION_ID_UNKNOWN,
    UNSUPPORTED_SVN,
    RspError,
    StatusCode,
)

TAG_SIGNATURE = 0x5F37  # [APPLICATION 55] euiccSignature1/2, serverSignature1, smdpSignature2
TAG_SKI = 0x04  # SubjectKeyIdentifier ::= OCTET STRING
SUPPORTED_SVN_MAJOR = 2


def normalize_address(address: str) -> str:
    """SM-DP+ addresses compare case-insensitively (FQDN), with an optional port; ':443' is the default."""
    value = address.strip().lower().rstrip("/")
    return value[:-4] if value.endswith(":443") else value


@dataclass(frozen=True)
class SessionKeyValues:
    """What a download session carries between ES9+ calls (stored in the database by the caller)."""

    transaction_id: str  # upper-case hex
    server_challenge: bytes
    smdp_address: str
    ci_pkid: bytes


@dataclass(frozen=True)
class Initiated:
    session: SessionKeyValues
    response: dict[str, Any]


def _choose_chain(credentials: ServerCredentials, info1: dict[str, Any]) -> ServerChain:
    """The CI for this session (SGP.22 5.6.1): one the eUICC signs under (euiccCiPKIdListForSigning, in its
    order of preference) for which we hold a DPauth, and which the eUICC can also verify our DPauth with."""
    verification = set(info1.get("euiccCiPKIdListForVerification", []))
    supported = [c for c in map(credentials.chain_for, info1.get("euiccCiPKIdListForSigning", [])) if c is not None]
    if not supported:
        raise RspError(SECURITY_CONFIGURATION_NOT_SUPPORTED)
    for chain in supported:
        if chain.ci_pkid in verification:
            return chain
    raise RspError(NO_DPAUTH_FOR_CI)


def initiate_authentication(
    body: dict[str, Any],
    credentials: ServerCredentials,
    addresses: frozenset[str],
    *,
    random: Callable[[int], bytes] = os.urandom,
) -> Initiated:
    """ES9+.InitiateAuthentication (SGP.22 section 5.6.1).

    ``random(n)`` gives the transactionId and then the serverChallenge (16 bytes each); tests inject it."""
    euicc_challenge = fields.required_b64(body, "euiccChallenge", size=16)
    info1 = fields.decode("EUICCInfo1", fields.required_der(body, "euiccInfo1"), "euiccInfo1")
    smdp_address = fields.required_str(body, "smdpAddress", max_length=255)
    if normalize_address(smdp_address) not in addresses:
        raise RspError(INVALID_SMDP_ADDRESS, f"{smdp_address!r} is not this SM-DP+'s address")
    if info1["svn"][0] != SUPPORTED_SVN_MAJOR:
        svn = ".".join(str(b) for b in info1["svn"])
        raise RspError(UNSUPPORTED_SVN, f"SVN {svn} is not supported (v2.x only)")
    chain = _choose_chain(credentials, info1)

    transaction_id = random(16)
    server_challenge = random(16)
    server_signed1 = asn1.rsp().encode(
        "ServerSigned1",
        {
            "transactionId": transaction_id,
            "euiccChallenge": euicc_challenge,
            "serverAddress": smdp_address,
            "serverChallenge": server_challenge,
        },
    )
    signature = ecdsa.sign(chain.dpauth_key, server_signed1)
    session = SessionKeyValues(transaction_id.hex().upper(), server_challenge, smdp_address, chain.ci_pkid)
    return Initiated(
        session=session,
        response={
            "transactionId": session.transaction_id,
            "serverSigned1": b64.b64encode(server_signed1),
            "serverSignature1": b64.b64encode(tlv(TAG_SIGNATURE, signature)),
            "euiccCiPKIdToBeUsed": b64.b64encode(tlv(TAG_SKI, chain.ci_pkid)),
            "serverCertificate": b64.b64encode(chain.dpauth_cert.public_bytes(Encoding.DER)),
        },
    )


@dataclass(frozen=True)
class AuthenticatedEuicc:
    eid: str
    euicc_certificate: bytes  # DER
    public_key: ec.EllipticCurvePublicKey
    matching_id: str | None  # None or "" both mean: no matching ID (default SM-DP+ / SM-DS flow)
    euicc_info2: dict[str, Any]
    device_info: dict[str, Any]
    euicc_signature1: bytes  # the whole 5F37 TLV, as smdpSignature2 covers it


# SGP.22 section 5.6.2 error table for the certificate checks of AuthenticateClient (verification as
# in 4.5.2.2). CiUnknown is raised only for an EUM whose authorityKeyIdentifier names a CI key we
# don't have; a self-signed, unclaimed or undecodable EUM is EumCertificateInvalid.
_CERTIFICATE_ERRORS: dict[type[pki.CertificateError], StatusCode] = {
    pki.CiUnknown: CI_PUBLIC_KEY_UNKNOWN,  # 8.11.1 / 3.9
    pki.EumCertificateInvalid: EUM_CERTIFICATE_INVALID,  # 8.1.2 / 6.1
    pki.EumCertificateExpired: EUM_CERTIFICATE_EXPIRED,  # 8.1.2 / 6.3
    pki.EuiccCertificateInvalid: EUICC_CERTIFICATE_INVALID,  # 8.1.3 / 6.1
    pki.EuiccCertificateExpired: EUICC_CERTIFICATE_EXPIRED,  # 8.1.3 / 6.3
    # SGP.22 5.6.2: an EID outside the EUM's permitted range fails the eUICC certificate verification
    pki.EidOutOfRange: EUICC_CERTIFICATE_INVALID,
}


def _load_certificate(der: bytes, code: StatusCode, what: str) -> x509.Certificate:
    """Decode a certificate the eUICC sent; RspError(``code``) if it doesn't decode.

    cryptography decodes names and extensions lazily, so a malformed extension value would only
    raise later as a bare ValueError; they are decoded here so that such a certificate gets its
    precise code (8.1.2/6.1 for the EUM, 8.1.3/6.1 for the eUICC, SGP.22 section 5.6.2).
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise RspError(code, f"{what} is not a valid X.509 certificate: {exc}") from None
    problem = pki.parse_problem(cert)
    if problem:
        raise RspError(code, f"{what} is not a valid X.509 certificate: {problem}")
    return cert


def split_signed_response(der: bytes, outer_tag: int, field: str, tags: tuple[int, ...]) -> list[bytes]:
    """The raw TLVs inside ``outer_tag { [0] { ... } }`` (the Ok alternative), which must be ``tags``."""
    try:
        outer = read_tlv(der)
        if outer.tag != outer_tag:
            raise RspError(INVALID_INPUT, f"{field} has tag {outer.tag:X}, expected {outer_tag:X}")
        ok = read_tlv(outer.value)
        if ok.end != len(outer.value):
            raise RspError(INVALID_INPUT, f"{field} has {len(outer.value) - ok.end} bytes after its alternative")
        if ok.tag != 0xA0:  # [0] is the Ok alternative; [1] the eUICC's error; anything else is unknown
            kind, value = fields.decode(_TYPE_OF[outer_tag], der, field)
            if kind is None:  # EXTENSIBILITY IMPLIED: asn1tools decodes an unknown alternative as (None, None)
                raise RspError(INVALID_INPUT, f"{field} holds an unknown alternative (tag {ok.tag:X})")
            raise RspError(INVALID_INPUT, f"{field} reports an eUICC error: {kind} {value}")
        parts = list(iter_tlvs(ok.value))
    except TlvError as exc:
        raise RspError(INVALID_INPUT, f"{field} is not DER: {exc}") from None
    if [p.tag for p in parts] != list(tags):
        found = " ".join(f"{p.tag:X}" for p in parts)
        raise RspError(INVALID_INPUT, f"{field} holds [{found}], expected [{' '.join(f'{t:X}' for t in tags)}]")
    return [p.raw for p in parts]


SIGNED_AND_CERTIFICATES = (0x30, TAG_SIGNATURE, 0x30, 0x30)
SIGNED = (0x30, TAG_SIGNATURE)
_TYPE_OF = {0xBF38: "AuthenticateServerResponse", 0xBF21: "PrepareDownloadResponse", 0xBF41: "CancelSessionResponse"}


def check_transaction(signed_transaction_id: bytes, session: SessionKeyValues) -> None:
    if signed_transaction_id.hex().upper() != session.transaction_id:
        raise RspError(TRANSACTION_ID_UNKNOWN, "the signed transactionId is not this session's")


def verify_authenticate_client(
    body: dict[str, Any], session: SessionKeyValues, trusted_cis: list[x509.Certificate], now: datetime
) -> AuthenticatedEuicc:
    """ES9+.AuthenticateClient checks (SGP.22 section 5.6.2), certificates first, then euiccSignature1."""
    der = fields.required_der(body, "authenticateServerResponse")
    signed1, signature1, euicc_der, eum_der = split_signed_response(der, 0xBF38, "authenticateServerResponse", SIGNED_AND_CERTIFICATES)
    # The certificates are parsed by cryptography below; decoding them with asn1tools too costs milliseconds.
    euicc_signed1 = fields.decode("EuiccSigned1", signed1, "euiccSigned1")
    euicc_cert = _load_certificate(euicc_der, EUICC_CERTIFICATE_INVALID, "euiccCertificate")
    eum_cert = _load_certificate(eum_der, EUM_CERTIFICATE_INVALID, "eumCertificate")
    try:
        identity = pki.verify_euicc_chain(euicc_cert, eum_cert, trusted_cis, now)
    except pki.CertificateError as exc:
        raise RspError(_CERTIFICATE_ERRORS[type(exc)], str(exc) or None) from None

    try:
        ecdsa.verify(identity.public_key, signed1, read_tlv(signature1).value)
    except InvalidSignature:
        raise RspError(EUICC_SIGNATURE_INVALID, "euiccSignature1 does not verify") from None
    check_transaction(euicc_signed1["transactionId"], session)
    if euicc_signed1["serverChallenge"] != session.server_challenge:
        raise RspError(EUICC_SIGNATURE_INVALID, "serverChallenge does not match")
    if normalize_address(euicc_signed1["serverAddress"]) != normalize_address(session.smdp_address):
        raise RspError(INVALID_SMDP_ADDRESS, "the signed serverAddress is not the one of initiateAuthentication")

    # SGP.22 v2 knows one alternative; any other (a v3 one, or one asn1tools decodes as (None, None)) is 1.6/2.1.
    _ctx_kind, ctx = fields.choice(euicc_signed1["ctxParams1"], "ctxParams1", ("ctxParamsForCommonAuthentication",))
    return AuthenticatedEuicc(
        eid=identity.eid,
        euicc_certificate=euicc_der,
        public_key=identity.public_key,
        matching_id=ctx.get("matchingId"),
        euicc_info2=euicc_signed1["euiccInfo2"],
        device_info=ctx.get("deviceInfo", {}),
        euicc_signature1=signature1,
    )


@dataclass(frozen=True)
class DownloadOffer:
    response: dict[str, Any]
    smdp_signature2: bytes  # the 5F37 TLV, which euiccSignature2 covers


def authenticate_client_response(
    *,
    transaction_id: str,
    chain: ServerChain,
    euicc_signature1: bytes,
    store_metadata: bytes,
    cc_required: bool,
    bpp_euicc_otpk: bytes | None,
) -> DownloadOffer:
    """The AuthenticateClient answer: profile metadata and smdpSigned2 signed with SK.DPpb (SGP.22 5.6.2)."""
    smdp_signed2_value: dict[str, Any] = {"transactionId": bytes.fromhex(transaction_id), "ccRequiredFlag": cc_required}
    if bpp_euicc_otpk is not None:  # download retry: ask the eUICC to reuse its one-time key (SGP.22 3.1.3.3)
        smdp_signed2_value["bppEuiccOtpk"] = bpp_euicc_otpk
    smdp_signed2 = asn1.rsp().encode("SmdpSigned2", smdp_signed2_value)
    signature2 = tlv(TAG_SIGNATURE, ecdsa.sign(chain.dppb_key, smdp_signed2 + euicc_signature1))
    return DownloadOffer(
        response={
            "transactionId": transaction_id,
            "profileMetadata": b64.b64encode(store_metadata),
            "smdpSigned2": b64.b64encode(smdp_signed2),
            "smdpSignature2": b64.b64encode(signature2),
            "smdpCertificate": b64.b64encode(chain.dppb_cert.public_bytes(Encoding.DER)),
        },
        smdp_signature2=signature2,
    )


@dataclass(frozen=True)
class PreparedDownload:
    euicc_otpk: bytes
    hash_cc: bytes | None


def verify_prepare_download(
    body: dict[str, Any],
    session: SessionKeyValues,
    euicc_public_key: ec.EllipticCurvePublicKey,
    smdp_signature2: bytes,
) -> PreparedDownload:
    """ES9+.GetBoundProfilePackage checks (SGP.22 section 5.6.3): euiccSignature2 over euiccSigned2 || smdpSignature2."""
    der = fields.required_der(body, "prepareDownloadResponse")
    decoded = fields.decode("PrepareDownloadResponse", der, "prepareDownloadResponse")
    signed2, signature2 = split_signed_response(der, 0xBF21, "prepareDownloadResponse", SIGNED)
    try:
        ecdsa.verify(euicc_public_key, signed2 + smdp_signature2, read_tlv(signature2).value)
    except InvalidSignature:
        raise RspError(EUICC_SIGNATURE_INVALID, "euiccSignature2 does not verify") from None
    euicc_signed2 = decoded[1]["euiccSigned2"]
    check_transaction(euicc_signed2["transactionId"], session)
    try:  # otPK.EUICC.ECKA must be a point on the eUICC's curve (SGP.22 5.7.5), or no key agreement follows
        ecdsa.public_key_from_bytes(ecdsa.Curve.of(euicc_public_key), euicc_signed2["euiccOtpk"])
    except ValueError as exc:
        raise RspError(INVALID_INPUT, f"euiccOtpk is not a public key on the eUICC's curve: {exc}") from None
    return PreparedDownload(euicc_otpk=euicc_signed2["euiccOtpk"], hash_cc=euicc_signed2.get("hashCc"))


def eid_bytes(eid: str) -> bytes:
    return bytes.fromhex(eid)


__all__ = [
    "AuthenticatedEuicc",
    "DownloadOffer",
    "Initiated",
    "PreparedDownload",
    "SessionKeyValues",
    "authenticate_client_response",
    "initiate_authentication",
    "normalize_address",
    "verify_authenticate_client",
    "verify_prepare_download",
]
