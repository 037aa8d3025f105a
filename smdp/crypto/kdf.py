"""BSP key agreement and session key derivation (SGP.22 section 2.6.4, BSP/SCP03t: key derivation).

The SM-DP+ and the eUICC each hold a one-time key pair (otSK/otPK.DP.ECKA, otSK/otPK.EUICC.ECKA).
ECKA-DH (BSI TR-03111 section 4.3.1) on them gives the shared secret ShS, the x-coordinate of the
shared point. The X9.63 KDF with SHA-256 then expands ShS with the SharedInfo

    keyType || keyLength || L(hostId) || hostId || L(EID) || EID

(keyType, keyLength and hostId are the values the SM-DP+ sent in the controlRefTemplate of
InitialiseSecureChannel; EID is the 16-byte EID) into 3 x keyLength bytes, taken in this order:
initial MAC chaining value, S-ENC, S-MAC.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from smdp.crypto.ecdsa import Curve

__all__ = ["KEY_LENGTH", "KEY_TYPE_AES", "SessionKeys", "derive_session_keys", "ecka"]

# controlRefTemplate values SGP.22 v2.x defines: keyType '88' (AES), keyLen '10' (AES-128).
KEY_TYPE_AES = 0x88
KEY_LENGTH = 16


@dataclass(frozen=True)
class SessionKeys:
    """One BSP key set: the session keys S-ENC/S-MAC from the KDF, or the PPK-ENC/PPK-MAC of
    ReplaceSessionKeys, each with its initial MAC chaining value. Secret: never printed."""

    s_enc: bytes
    s_mac: bytes
    initial_mcv: bytes

    def __post_init__(self) -> None:
        for name in ("s_enc", "s_mac", "initial_mcv"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != KEY_LENGTH:
                raise ValueError(f"{name} must be {KEY_LENGTH} bytes")

    def __repr__(self) -> str:
        return "SessionKeys(<redacted>)"

    __str__ = __repr__


def ecka(
    private_key: ec.EllipticCurvePrivateKey, peer_public_key: ec.EllipticCurvePublicKey
) -> bytes:
    """ECKA-DH shared secret: x-coordinate of d * Q (32 bytes); ValueError if the curves differ."""
    if Curve.of(private_key) is not Curve.of(peer_public_key):
        raise ValueError("private and peer public key are on different curves")
    return private_key.exchange(ec.ECDH(), peer_public_key)


def _lv(value: bytes) -> bytes:
    # One length byte, as in the GlobalPlatform shared info; SGP.22 values are at most 16 bytes.
    if len(value) > 0x7F:
        raise ValueError("LV value longer than 127 bytes")
    return bytes([len(value)]) + value


def derive_session_keys(
    shared_secret: bytes, *, key_type: int, key_length: int, host_id: bytes, eid: bytes
) -> SessionKeys:
    """X9.63 KDF (SHA-256) of the ECKA shared secret into initial MCV, S-ENC and S-MAC."""
    if key_type != KEY_TYPE_AES or key_length != KEY_LENGTH:
        raise ValueError("SGP.22 v2.x defines only keyType 0x88 with keyLength 16 (AES-128)")
    if len(eid) != 16:
        raise ValueError("EID must be 16 bytes")
    if not host_id:
        raise ValueError("host ID must not be empty")
    shared_info = bytes([key_type, key_length]) + _lv(host_id) + _lv(eid)
    out = X963KDF(
        algorithm=hashes.SHA256(), length=3 * key_length, sharedinfo=shared_info
    ).derive(shared_secret)
    return SessionKeys(
        initial_mcv=out[:key_length],
        s_enc=out[key_length : 2 * key_length],
        s_mac=out[2 * key_length :],
    )
