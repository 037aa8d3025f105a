"""The eUICC side of an RSP session: ES10b.GetEUICCChallenge (SGP.22 5.7.7), AuthenticateServer
(5.7.13), PrepareDownload (5.7.5) and CancelSession (5.7.14); common mutual authentication, 3.1.2.

Every signature is checked over the exact bytes received (the TLVs are sliced out of the request,
never re-encoded), and what the eUICC signs is assembled from received TLVs where SGP.22 says the
value is copied (euiccSigned1 carries the serverSigned1 fields and ctxParams1 as the LPA sent them).

One session at a time, as on a real eUICC: GetEUICCChallenge starts a new one and drops the old.
The one-time key pair of PrepareDownload lives in memory only; it is kept after a failed
installation so that an SM-DP+ retrying the download with bppEuiccOtpk can reuse it (3.1.3.3).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from smdp.codec import asn1
from smdp.codec.tlv import Tlv, TlvError, iter_tlvs, read_tlv, tlv
from smdp.crypto import ecdsa
from smdp.euicc.der import decode_request
from smdp.euicc.errors import EuiccCommandError
from smdp.pki import verify as pki
from smdp.pki.store import EuiccCredentials
from smdp.rsp.es10b import AUTHENTICATE_ERRORS, DOWNLOAD_ERRORS

__all__ = ["RspSession", "SessionManager"]

TAG_SIGNATURE = 0x5F37


@dataclass
class RspSession:
    """What the eUICC remembers between the ES10b calls of one download."""

    challenge: bytes
    step: str = "challenge"  # challenge -> authenticated -> prepared
    transaction_id: bytes | None = None
    server_address: str | None = None
    smdp_oid: str | None = None
    ci: x509.Certificate | None = None
    euicc_signature1: bytes | None = None  # the whole '5F37' TLV: smdpSignature2 covers it
    dppb_public_key: ec.EllipticCurvePublicKey | None = None
    otpk: bytes | None = None
    otsk: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    matching_id: str | None = None


class SessionManager:
    """ES10b session functions over one eUICC identity. Requests are whole DER TLVs."""

    def __init__(self, credentials: EuiccCredentials, clock: Callable[[], datetime]) -> None:
        self._credentials = credentials
        self._clock = clock
        self._cis = {pki.subject_key_identifier(ci): ci for ci in credentials.ci_certs}
        self.signing_pkids = [self._signing_pkid()]
        self.verification_pkids = list(self._cis)
        self.session: RspSession | None = None
        # otPK/otSK of the last PrepareDownload whose Profile did not get installed
        self._retained: tuple[bytes, ec.EllipticCurvePrivateKey] | None = None

    def _signing_pkid(self) -> bytes:
        # The CI our own certificate chain leads to: the EUM certificate's authorityKeyIdentifier.
        aki = pki.authority_key_identifier(self._credentials.eum_cert)
        if aki is not None and aki in self._cis:
            return aki
        return next(iter(self._cis))

    @property
    def euicc_certificate(self) -> bytes:
        return self._credentials.euicc_cert.public_bytes(Encoding.DER)

    @property
    def eum_certificate(self) -> bytes:
        return self._credentials.eum_cert.public_bytes(Encoding.DER)

    def sign(self, data: bytes) -> bytes:
        """SK.EUICC.ECDSA signature over ``data`` (64-byte r||s)."""
        return ecdsa.sign(self._credentials.euicc_key, data)

    def end(self) -> None:
        self.session = None

    def installation_succeeded(self) -> None:
        """The one-time key did its job: forget it (SGP.22 3.1.3.3, no reuse after success)."""
        self._retained = None
        self.session = None

    # --- ES10b.GetEUICCChallenge ---------------------------------------------------------------

    def get_euicc_challenge(self, request: bytes) -> bytes:
        decode_request("GetEuiccChallengeRequest", request)
        self.session = RspSession(challenge=os.urandom(16))
        return asn1.rsp().encode("GetEuiccChallengeResponse", {"euiccChallenge": self.session.challenge})

    # --- ES10b.AuthenticateServer --------------------------------------------------------------

    def authenticate_server(self, request: bytes, euicc_info2: bytes) -> bytes:
        decoded = decode_request("AuthenticateServerRequest", request)
        signed1_tlv, signature1_tlv, _pkid, cert_tlv, ctx_tlv = _parts(request, 5)
        signed1 = decoded["serverSigned1"]
        transaction_id = signed1["transactionId"]

        def error(name: str) -> bytes:
            self.session = None  # a failed authentication ends the session
            return asn1.rsp().encode(
                "AuthenticateServerResponse",
                ("authenticateResponseError", {"transactionId": transaction_id,
                                               "authenticateErrorCode": AUTHENTICATE_ERRORS[name]}),
            )  # fmt: skip

        session = self.session
        if session is None or session.step != "challenge":
            return error("noSessionContext")
        try:
            certificate = x509.load_der_x509_certificate(cert_tlv.raw)
        except ValueError:
            return error("invalidCertificate")
        public_key = _supported_key(certificate)
        if public_key is None:
            return error("unsupportedCurve")
        # The CI named by euiccCiPKIdToBeUsed must be one we sign under, and the DPauth must chain
        # to it with the dp-auth role (4.5.2.2); the role being part of the certificate profile, a
        # certificate with another role is an invalidCertificate.
        ci = self._cis.get(decoded["euiccCiPKIdToBeUsed"])
        if ci is None or decoded["euiccCiPKIdToBeUsed"] not in self.signing_pkids:
            return error("ciPKUnknown")
        try:
            pki.verify_server_certificate(certificate, [ci], self._clock(), role="dp-auth")
        except pki.CiUnknown:
            return error("ciPKUnknown")
        except pki.CertificateError:
            return error("invalidCertificate")
        try:
            smdp_oid = pki.smdp_oid_of(certificate)
        except pki.CertificateError:
            return error("invalidOid")
        try:
            ecdsa.verify(public_key, signed1_tlv.raw, signature1_tlv.value)
        except InvalidSignature:
            return error("invalidSignature")
        if signed1["euiccChallenge"] != session.challenge:
            return error("euiccChallengeMismatch")

        # euiccSigned1: transactionId, serverAddress and serverChallenge copied from serverSigned1,
        # our EUICCInfo2, and ctxParams1 exactly as received.
        fields = {item.tag: item.raw for item in iter_tlvs(signed1_tlv.value)}
        euicc_signed1 = tlv(0x30, fields[0x80] + fields[0x83] + fields[0x84] + euicc_info2 + ctx_tlv.raw)
        signature1 = tlv(TAG_SIGNATURE, self.sign(euicc_signed1))
        ctx = decoded["ctxParams1"][1] or {}  # an unknown (future) CHOICE alternative decodes as None
        session.step = "authenticated"
        session.transaction_id = transaction_id
        session.server_address = signed1["serverAddress"]
        session.smdp_oid = smdp_oid
        session.ci = ci
        session.euicc_signature1 = signature1
        session.matching_id = ctx.get("matchingId")
        ok = euicc_signed1 + signature1 + self.euicc_certificate + self.eum_certificate
        return tlv(0xBF38, tlv(0xA0, ok))

    # --- ES10b.PrepareDownload -----------------------------------------------------------------

    def prepare_download(self, request: bytes) -> bytes:
        decoded = decode_request("PrepareDownloadRequest", request)
        parts = _parts(request, 4 if "hashCc" in decoded else 3)
        signed2_tlv, signature2_tlv, cert_tlv = parts[0], parts[1], parts[-1]
        signed2 = decoded["smdpSigned2"]
        transaction_id = signed2["transactionId"]

        def error(name: str) -> bytes:
            return asn1.rsp().encode(
                "PrepareDownloadResponse",
                ("downloadResponseError", {"transactionId": transaction_id,
                                           "downloadErrorCode": DOWNLOAD_ERRORS[name]}),
            )  # fmt: skip

        session = self.session
        if session is None or session.step != "authenticated" or session.ci is None:
            return error("noSessionContext")
        try:
            certificate = x509.load_der_x509_certificate(cert_tlv.raw)
        except ValueError:
            return error("invalidCertificate")
        public_key = _supported_key(certificate)
        if public_key is None:
            return error("unsupportedCurve")
        curve = ecdsa.Curve.of(public_key)
        try:
            # CERT.DPpb must come from the CI of this session and name the same SM-DP+ as DPauth.
            pki.verify_server_certificate(certificate, [session.ci], self._clock(), role="dp-pb")
            if pki.smdp_oid_of(certificate) != session.smdp_oid:
                return error("invalidCertificate")
        except pki.CertificateError:
            return error("invalidCertificate")
        assert session.euicc_signature1 is not None
        try:
            ecdsa.verify(public_key, signed2_tlv.raw + session.euicc_signature1, signature2_tlv.value)
        except InvalidSignature:
            return error("invalidSignature")
        if transaction_id != session.transaction_id:
            return error("invalidTransactionId")
        hash_cc = decoded.get("hashCc")
        if signed2["ccRequiredFlag"] and hash_cc is None:
            # SGP.22 has no dedicated DownloadErrorCode for a missing Confirmation Code.
            return error("undefinedError")

        wanted = signed2.get("bppEuiccOtpk")
        if wanted is not None and self._retained is not None and self._retained[0] == wanted:
            otpk, otsk = self._retained  # download retry: reuse the pair the BPP was bound to
        else:
            otsk = ecdsa.generate_private_key(curve)
            otpk = ecdsa.public_key_to_bytes(otsk.public_key())
        self._retained = (otpk, otsk)

        value: dict[str, Any] = {"transactionId": transaction_id, "euiccOtpk": otpk}
        if signed2["ccRequiredFlag"]:
            value["hashCc"] = hash_cc
        euicc_signed2 = asn1.rsp().encode("EUICCSigned2", value)
        signature2 = tlv(TAG_SIGNATURE, self.sign(euicc_signed2 + signature2_tlv.raw))
        session.step = "prepared"
        session.dppb_public_key = public_key
        session.otpk, session.otsk = otpk, otsk
        return tlv(0xBF21, tlv(0xA0, euicc_signed2 + signature2))

    # --- ES10b.CancelSession -------------------------------------------------------------------

    def cancel_session(self, request: bytes) -> bytes:
        decoded = decode_request("CancelSessionRequest", request)
        session = self.session
        if (
            session is None
            or session.transaction_id is None
            or session.transaction_id != decoded["transactionId"]
        ):
            return asn1.rsp().encode("CancelSessionResponse", ("cancelSessionResponseError", 5))
        assert session.smdp_oid is not None
        signed = asn1.rsp().encode(
            "EuiccCancelSessionSigned",
            {"transactionId": session.transaction_id, "smdpOid": session.smdp_oid, "reason": decoded["reason"]},
        )
        signature = tlv(TAG_SIGNATURE, self.sign(signed))
        self.session = None
        self._retained = None
        return tlv(0xBF41, tlv(0xA0, signed + signature))


def _supported_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey | None:
    """The certificate's public key if it is on an SGP.22 curve, else None (unsupportedCurve)."""
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    try:
        ecdsa.Curve.of(key)
    except ValueError:
        return None
    return key


def _parts(request: bytes, count: int) -> list[Tlv]:
    """The first ``count`` TLVs inside the request's outer TLV, as received."""
    try:
        parts = list(iter_tlvs(read_tlv(request).value))
    except TlvError as exc:
        raise EuiccCommandError(f"malformed request: {exc}") from None
    if len(parts) < count:
        raise EuiccCommandError("request has fewer elements than its type requires")
    return parts[:count]
