"""CPU floor of one profile download (SGP.22 section 3.1.3; DESIGN.md "Performance yardsticks").

Whatever the server does around it, one download costs the SM-DP+ at least: 3 ECDSA signatures
(serverSignature1, smdpSignature2, the InitialiseSecureChannel signature), 5 verifications
(eUICC and EUM certificates, euiccSignature1, euiccSignature2, the PIR signature), one one-time key
pair, one ECKA, and BSP protection of the profile (~20 KB). This module measures those operations
in CPU time (``time.process_time``) so the bench command can print the floor; it prints nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from smdp.crypto import ecdsa, kdf
from smdp.crypto.bsp import TAG_LOAD_PROFILE_ELEMENTS, BspSender
from smdp.crypto.ecdsa import Curve

__all__ = ["PROFILE_SIZE", "measure_crypto_floor"]

PROFILE_SIZE = 20 * 1024
_SIGNS, _VERIFIES, _KEYGENS, _ECDHS = 3, 5, 1, 1


def _cpu_ms(op: Callable[[], object], iterations: int) -> float:
    """Mean CPU milliseconds of ``op`` over ``iterations`` calls, after one untimed warm-up."""
    op()
    start = time.process_time()
    for _ in range(iterations):
        op()
    return (time.process_time() - start) * 1000.0 / iterations


def measure_crypto_floor(curve: Curve, iterations: int = 200) -> dict[str, float]:
    """Per-operation CPU ms on ``curve`` and the per-download floor built from them.

    Keys: ecdsa_sign_ms, ecdsa_verify_ms, keygen_ms, ecdh_ms, kdf_ms, bsp_20kb_ms (encrypt+MAC
    of a 20 KiB profile into '86' segments) and download_floor_ms
    (3 signs + 5 verifies + 1 keygen + 1 ECDH + BSP 20 KiB).
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    signer = ecdsa.generate_private_key(curve)
    peer = ecdsa.generate_private_key(curve).public_key()
    message = secrets.token_bytes(200)  # about the size of euiccSigned2 plus smdpSignature2
    signature = ecdsa.sign(signer, message)
    verifier = signer.public_key()
    shared = kdf.ecka(signer, peer)
    eid = bytes.fromhex("89049032123451234512345678901235")
    host_id = bytes(8)
    keys = kdf.derive_session_keys(
        shared, key_type=kdf.KEY_TYPE_AES, key_length=kdf.KEY_LENGTH, host_id=host_id, eid=eid
    )
    profile = secrets.token_bytes(PROFILE_SIZE)

    result = {
        "ecdsa_sign_ms": _cpu_ms(lambda: ecdsa.sign(signer, message), iterations),
        "ecdsa_verify_ms": _cpu_ms(lambda: ecdsa.verify(verifier, message, signature), iterations),
        "keygen_ms": _cpu_ms(lambda: ecdsa.generate_private_key(curve), iterations),
        "ecdh_ms": _cpu_ms(lambda: kdf.ecka(signer, peer), iterations),
        "kdf_ms": _cpu_ms(
            lambda: kdf.derive_session_keys(
                shared,
                key_type=kdf.KEY_TYPE_AES,
                key_length=kdf.KEY_LENGTH,
                host_id=host_id,
                eid=eid,
            ),
            iterations,
        ),
        "bsp_20kb_ms": _cpu_ms(
            lambda: BspSender(keys).encrypt_and_mac(TAG_LOAD_PROFILE_ELEMENTS, profile),
            iterations,
        ),
    }
    result["download_floor_ms"] = (
        _SIGNS * result["ecdsa_sign_ms"]
        + _VERIFIES * result["ecdsa_verify_ms"]
        + _KEYGENS * result["keygen_ms"]
        + _ECDHS * result["ecdh_ms"]
        + result["bsp_20kb_ms"]
    )
    return result
