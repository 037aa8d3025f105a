"""ES8+ Bound Profile Package, SGP.22 sections 2.5.4 and 5.5 (built by the SM-DP+, opened by the eUICC).

BoundProfilePackage ::= [54] SEQUENCE {            -- 'BF36'
    initialiseSecureChannelRequest  'BF23', signed with SK.DPpb.ECDSA
    firstSequenceOf87   [0]  ConfigureISDP, encrypted + MACed ('87' segments)
    sequenceOf88        [1]  StoreMetadata, MACed only ('88' segments)
    secondSequenceOf87  [2]  ReplaceSessionKeys (optional, not used: the profile is protected with session keys)
    sequenceOf86        [3]  the profile elements, encrypted + MACed ('86' segments) }

The BSP segments are complete TLVs already, so the outer structure is assembled with the TLV helper
(an ASN.1 encoder would wrap them a second time).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from smdp.codec import asn1
from smdp.codec.tlv import tlv
from smdp.crypto import ecdsa
from smdp.crypto.bsp import BspSender
from smdp.crypto.kdf import derive_session_keys, ecka

KEY_TYPE_AES = 0x88  # GlobalPlatform key type for AES (controlRefTemplate.keyType)
KEY_LENGTH = 16
REMOTE_OP_INSTALL_BPP = 1  # RemoteOpId installBoundProfilePackage


def initialise_secure_channel_signed_part(
    transaction_id: bytes, host_id: bytes, smdp_otpk: bytes
) -> bytes:
    """remoteOpId, transactionId, controlRefTemplate and smdpOtpk TLVs: what smdpSign covers (with euiccOtpk)."""
    control_ref_template = tlv(0x80, bytes([KEY_TYPE_AES])) + tlv(0x81, bytes([KEY_LENGTH])) + tlv(0x84, host_id)
    return (
        tlv(0x82, bytes([REMOTE_OP_INSTALL_BPP]))
        + tlv(0x80, transaction_id)
        + tlv(0xA6, control_ref_template)
        + tlv(0x5F49, smdp_otpk)
    )


@functools.cache
def configure_isdp_request() -> bytes:
    """ConfigureISDPRequest without dpProprietaryData: the same bytes for every BPP ('BF24 00')."""
    return asn1.rsp().encode("ConfigureISDPRequest", {})


@dataclass(frozen=True)
class BoundProfilePackage:
    der: bytes
    smdp_otpk: bytes


def build_bound_profile_package(
    *,
    transaction_id: bytes,
    eid: bytes,
    euicc_otpk: bytes,
    smdp_otsk: ec.EllipticCurvePrivateKey,
    dppb_key: ec.EllipticCurvePrivateKey,
    store_metadata: bytes,
    profile: bytes,
    host_id: bytes | None = None,
) -> BoundProfilePackage:
    """Bind an unprotected profile package to one eUICC and session (SGP.22 2.5.4, 3.1.3.3)."""
    host_id = host_id if host_id is not None else os.urandom(16)
    curve = ecdsa.Curve.of(smdp_otsk.public_key())
    euicc_public = ecdsa.public_key_from_bytes(curve, euicc_otpk)
    smdp_otpk = ecdsa.public_key_to_bytes(smdp_otsk.public_key())

    signed_part = initialise_secure_channel_signed_part(transaction_id, host_id, smdp_otpk)
    smdp_sign = ecdsa.sign(dppb_key, signed_part + tlv(0x5F49, euicc_otpk))
    initialise_secure_channel = tlv(0xBF23, signed_part + tlv(0x5F37, smdp_sign))

    keys = derive_session_keys(
        ecka(smdp_otsk, euicc_public), key_type=KEY_TYPE_AES, key_length=KEY_LENGTH, host_id=host_id, eid=eid
    )
    bsp = BspSender(keys)
    body = (
        initialise_secure_channel
        + tlv(0xA0, b"".join(bsp.encrypt_and_mac(0x87, configure_isdp_request())))
        + tlv(0xA1, b"".join(bsp.mac_only(0x88, store_metadata)))
        + tlv(0xA3, b"".join(bsp.encrypt_and_mac(0x86, profile)))
    )
    return BoundProfilePackage(der=tlv(0xBF36, body), smdp_otpk=smdp_otpk)
