"""The crypto floor measurement returns the documented numbers (smdp.crypto.floor).

Only the shape is checked: timings themselves are never asserted.
"""

from __future__ import annotations

import pytest

from smdp.crypto.ecdsa import Curve
from smdp.crypto.floor import measure_crypto_floor

KEYS = {
    "ecdsa_sign_ms",
    "ecdsa_verify_ms",
    "keygen_ms",
    "ecdh_ms",
    "kdf_ms",
    "bsp_20kb_ms",
    "download_floor_ms",
}


@pytest.mark.parametrize("curve", [Curve.NIST_P256, Curve.BRAINPOOL_P256R1])
def test_measure_crypto_floor_reports_every_operation(curve: Curve) -> None:
    result = measure_crypto_floor(curve, iterations=2)
    assert set(result) == KEYS
    assert all(isinstance(v, float) and v >= 0.0 for v in result.values())
    parts = (
        3 * result["ecdsa_sign_ms"]
        + 5 * result["ecdsa_verify_ms"]
        + result["keygen_ms"]
        + result["ecdh_ms"]
        + result["bsp_20kb_ms"]
    )
    assert result["download_floor_ms"] == pytest.approx(parts)


def test_measure_crypto_floor_refuses_zero_iterations() -> None:
    with pytest.raises(ValueError):
        measure_crypto_floor(Curve.NIST_P256, iterations=0)
