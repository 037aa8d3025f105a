"""A minimal fake SM-DP+ for the virtual eUICC tests (no tests here).

It builds the server side of SGP.22 3.1.2/3.1.3 from the crypto primitives alone (never through
smdp.rsp), so the eUICC is checked against an independent rendering of the protocol:
serverSigned1/serverSignature1, smdpSigned2/smdpSignature2 and a Bound Profile Package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from smdp.codec import asn1
from smdp.codec.tlv import iter_tlvs, read_tlv, tlv
from smdp.crypto import ecdsa
from smdp.crypto.bsp import BspSender
from smdp.crypto.kdf import SessionKeys, derive_session_keys, ecka
from smdp.euicc import VirtualEuicc
from smdp.pki.issue import init_pki
from smdp.pki.store import ServerChain, load_server_credentials
from smdp.pki.verify import subject_key_identifier
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import encode_iccid, luhn_check_digit

ADDRESS = "smdp.example.com"
DEVICE_INFO = {"tac": bytes.fromhex("35290611"), "deviceCapabilities": {}}


def make_iccid(n: int) -> str:
    body = f"899900123456789{n:04d}"
    return body + luhn_check_digit(body)


def demo_profile(iccid: str) -> bytes:
    return build_demo_profile(iccid, "001010000000001", bytes(range(16)), bytes(range(16, 32)))


def store_metadata(iccid: str, **extra: Any) -> bytes:
    value = {"iccid": encode_iccid(iccid), "serviceProviderName": "smdp test", "profileName": f"Demo {iccid[-4:]}"}
    value.update(extra)
    return asn1.rsp().encode("StoreMetadataRequest", value)


def decode(type_name: str, der: bytes) -> Any:
    return asn1.decode_exact(asn1.rsp(), type_name, der)


@dataclass
class FakeSmdp:
    """The server half of one download, one step per method; every value is kept for inspection."""

    chain: ServerChain
    address: str = ADDRESS
    transaction_id: bytes = field(default_factory=lambda: os.urandom(16))
    server_challenge: bytes = field(default_factory=lambda: os.urandom(16))
    euicc_signature1: bytes = b""  # 5F37 TLV
    smdp_signature2: bytes = b""  # 5F37 TLV

    @property
    def oid(self) -> str:
        san = self.chain.dpauth_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.get_values_for_type(x509.RegisteredID)[0].dotted_string

    def initiate(
        self,
        euicc_challenge: bytes,
        *,
        certificate: x509.Certificate | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        ci_pkid: bytes | None = None,
        tamper_signature: bool = False,
    ) -> tuple[bytes, bytes, bytes, bytes]:
        """InitiateAuthentication's output as DER: serverSigned1, serverSignature1 ('5F37'),
        euiccCiPKIdToBeUsed ('04') and serverCertificate."""
        signed1 = asn1.rsp().encode(
            "ServerSigned1",
            {
                "transactionId": self.transaction_id,
                "euiccChallenge": euicc_challenge,
                "serverAddress": self.address,
                "serverChallenge": self.server_challenge,
            },
        )
        signature = ecdsa.sign(key or self.chain.dpauth_key, signed1)
        if tamper_signature:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        cert = (certificate or self.chain.dpauth_cert).public_bytes(Encoding.DER)
        pkid = tlv(0x04, ci_pkid if ci_pkid is not None else self.chain.ci_pkid)
        return signed1, tlv(0x5F37, signature), pkid, cert

    def authenticate_server_request(
        self, euicc_challenge: bytes, *, matching_id: str | None = "MATCH-1", **kwargs: Any
    ) -> bytes:
        """ES10b.AuthenticateServer request as the LPA builds it from InitiateAuthentication."""
        ctx: dict[str, Any] = {"deviceInfo": DEVICE_INFO}
        if matching_id is not None:
            ctx["matchingId"] = matching_id
        ctx_params1 = asn1.rsp().encode("CtxParams1", ("ctxParamsForCommonAuthentication", ctx))
        return tlv(0xBF38, b"".join(self.initiate(euicc_challenge, **kwargs)) + ctx_params1)

    def accept_authenticate_server(self, response: bytes) -> dict[str, Any]:
        """Check the eUICC's answer like AuthenticateClient does; keep euiccSignature1."""
        ok = read_tlv(read_tlv(response).value)
        assert ok.tag == 0xA0, f"AuthenticateServer failed: {decode('AuthenticateServerResponse', response)}"
        signed1, signature1, euicc_cert, _eum_cert = [t.raw for t in iter_tlvs(ok.value)]
        public_key = x509.load_der_x509_certificate(euicc_cert).public_key()
        ecdsa.verify(public_key, signed1, read_tlv(signature1).value)
        self.euicc_signature1 = signature1
        return decode("EuiccSigned1", signed1)

    def offer(
        self,
        *,
        cc_required: bool = False,
        bpp_euicc_otpk: bytes | None = None,
        transaction_id: bytes | None = None,
        tamper_signature: bool = False,
        certificate: x509.Certificate | None = None,
    ) -> tuple[bytes, bytes, bytes]:
        """AuthenticateClient's signed output as DER: smdpSigned2, smdpSignature2, smdpCertificate."""
        value: dict[str, Any] = {"transactionId": transaction_id or self.transaction_id, "ccRequiredFlag": cc_required}
        if bpp_euicc_otpk is not None:
            value["bppEuiccOtpk"] = bpp_euicc_otpk
        signed2 = asn1.rsp().encode("SmdpSigned2", value)
        signature = ecdsa.sign(self.chain.dppb_key, signed2 + self.euicc_signature1)
        if tamper_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        self.smdp_signature2 = tlv(0x5F37, signature)
        return signed2, self.smdp_signature2, (certificate or self.chain.dppb_cert).public_bytes(Encoding.DER)

    def prepare_download_request(self, *, hash_cc: bytes | None = None, **kwargs: Any) -> bytes:
        signed2, signature2, cert = self.offer(**kwargs)
        cc = tlv(0x04, hash_cc) if hash_cc is not None else b""
        return tlv(0xBF21, signed2 + signature2 + cc + cert)

    def accept_prepare_download(self, response: bytes, euicc_public_key: Any) -> dict[str, Any]:
        ok = read_tlv(read_tlv(response).value)
        assert ok.tag == 0xA0, f"PrepareDownload failed: {decode('PrepareDownloadResponse', response)}"
        signed2, signature2 = [t.raw for t in iter_tlvs(ok.value)]
        ecdsa.verify(euicc_public_key, signed2 + self.smdp_signature2, read_tlv(signature2).value)
        return decode("EUICCSigned2", signed2)

    def bound_profile_package(
        self,
        *,
        eid: str,
        euicc_otpk: bytes,
        profile: bytes,
        metadata: bytes,
        replace_session_keys: bool = False,
        tamper_sign: bool = False,
    ) -> bytes:
        """A BPP: InitialiseSecureChannel signed with SK.DPpb, then BSP-protected segments."""
        host_id = os.urandom(16)
        otsk = ecdsa.generate_private_key(self.chain.curve)
        smdp_otpk = ecdsa.public_key_to_bytes(otsk.public_key())
        crt = tlv(0x80, b"\x88") + tlv(0x81, b"\x10") + tlv(0x84, host_id)
        signed = tlv(0x82, b"\x01") + tlv(0x80, self.transaction_id) + tlv(0xA6, crt) + tlv(0x5F49, smdp_otpk)
        sign = ecdsa.sign(self.chain.dppb_key, signed + tlv(0x5F49, euicc_otpk))
        if tamper_sign:
            sign = bytes([sign[0] ^ 0x40]) + sign[1:]
        isc = tlv(0xBF23, signed + tlv(0x5F37, sign))
        peer = ecdsa.public_key_from_bytes(self.chain.curve, euicc_otpk)
        shared = ecka(otsk, peer)
        keys = derive_session_keys(shared, key_type=0x88, key_length=16, host_id=host_id, eid=bytes.fromhex(eid))
        bsp = BspSender(keys)
        body = isc + tlv(0xA0, b"".join(bsp.encrypt_and_mac(0x87, asn1.rsp().encode("ConfigureISDPRequest", {}))))
        body += tlv(0xA1, b"".join(bsp.mac_only(0x88, metadata)))
        if replace_session_keys:
            ppk = SessionKeys(s_enc=os.urandom(16), s_mac=os.urandom(16), initial_mcv=os.urandom(16))
            rsk = asn1.rsp().encode(
                "ReplaceSessionKeysRequest",
                {"initialMacChainingValue": ppk.initial_mcv, "ppkEnc": ppk.s_enc, "ppkCmac": ppk.s_mac},
            )
            body += tlv(0xA2, b"".join(bsp.encrypt_and_mac(0x87, rsk)))
            bsp = BspSender(ppk)
        body += tlv(0xA3, b"".join(bsp.encrypt_and_mac(0x86, profile)))
        return tlv(0xBF36, body)


@dataclass
class World:
    euicc: VirtualEuicc
    server: FakeSmdp
    manifest: Path
    state_path: Path


@pytest.fixture(scope="session")
def euicc_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_pki(tmp_path_factory.mktemp("euicc-pki"))


def new_world(manifest: Path, state_dir: Path, curve: str = "nist", **kwargs: Any) -> World:
    chain = next(c for c in load_server_credentials(manifest).chains if c.curve.value == curve)
    state_path = state_dir / f"euicc-{curve}.json"
    euicc = VirtualEuicc.open(state_path, manifest=manifest, curve=curve, **kwargs)
    return World(euicc=euicc, server=FakeSmdp(chain), manifest=manifest, state_path=state_path)


def challenge(euicc: VirtualEuicc) -> bytes:
    return decode("GetEuiccChallengeResponse", euicc.process(bytes.fromhex("BF2E00")))["euiccChallenge"]


def authenticate(world: World, **kwargs: Any) -> dict[str, Any]:
    request = world.server.authenticate_server_request(challenge(world.euicc), **kwargs)
    return world.server.accept_authenticate_server(world.euicc.process(request))


def prepare(world: World, **kwargs: Any) -> dict[str, Any]:
    response = world.euicc.process(world.server.prepare_download_request(**kwargs))
    euicc_key = x509.load_der_x509_certificate(world.euicc.sessions.euicc_certificate).public_key()
    return world.server.accept_prepare_download(response, euicc_key)


def bpp_for(world: World, signed2: dict[str, Any], iccid: str, **kwargs: Any) -> bytes:
    metadata = kwargs.pop("metadata", None) or store_metadata(iccid)
    profile = kwargs.pop("profile", None) or demo_profile(iccid)
    return world.server.bound_profile_package(
        eid=world.euicc.eid, euicc_otpk=signed2["euiccOtpk"], profile=profile, metadata=metadata, **kwargs
    )


def install(world: World, iccid: str, **metadata_fields: Any) -> bytes:
    """Run a whole download of a demo profile; returns the ProfileInstallationResult DER."""
    world.server = FakeSmdp(world.server.chain)
    authenticate(world)
    signed2 = prepare(world)
    bpp = bpp_for(world, signed2, iccid, metadata=store_metadata(iccid, **metadata_fields))
    return world.euicc.load_bound_profile_package(bpp)


def ci_pkid(cert: x509.Certificate) -> bytes:
    return subject_key_identifier(cert)
