"""ECKA shared secret and the BSP session key derivation (smdp.crypto.kdf)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from smdp.crypto.ecdsa import Curve, generate_private_key, public_key_to_bytes
from smdp.crypto.kdf import SessionKeys, derive_session_keys, ecka

CURVES = [Curve.NIST_P256, Curve.BRAINPOOL_P256R1]
HOST_ID = b"\x80" * 8


@pytest.mark.parametrize(
    ("shared_secret", "eid", "s_enc", "s_mac", "initial_mcv"),
    [
        # osmocom pySim, tests/unittests/test_esim_bsp.py, BSP_Test.test_kdf
        (
            "8902dca391bbb22570fe60c176076246f568b1941265dff1d729e63039658089",
            "89049032123451234512345678901335",
            "d782d575b22a38334556a3d9a1e2ae6b",
            "a35addc192ae8f934e2932116c7e89e7",
            "734bc93ddb10c71c5ad13d420dc08b5b",
        ),
        # osmocom pySim, tests/unittests/test_esim_bsp.py, BSP_Test_mode51.test_kdf
        # (hex dumps from a trace of a third-party SM-DP+)
        (
            "c9a993dd4879a8f7161f2085410edd4f9652f1df37be097ba96ba2ca6be528fe",
            "89049032123451234512345678901235",
            "472f5bfadd97f21d34f3ce9b51b92751",
            "9ec07f5b36a13e12a991d66e294e6242",
            "406d507b448a699e7a36a38494debbde",
        ),
    ],
)
def test_derive_session_keys_matches_known_answers(
    shared_secret: str, eid: str, s_enc: str, s_mac: str, initial_mcv: str
) -> None:
    keys = derive_session_keys(
        bytes.fromhex(shared_secret),
        key_type=0x88,
        key_length=16,
        host_id=HOST_ID,
        eid=bytes.fromhex(eid),
    )
    assert keys == SessionKeys(
        s_enc=bytes.fromhex(s_enc),
        s_mac=bytes.fromhex(s_mac),
        initial_mcv=bytes.fromhex(initial_mcv),
    )


def test_session_keys_depend_on_host_id_and_eid() -> None:
    secret = bytes(range(32))
    eid = bytes.fromhex("89049032123451234512345678901235")
    base = derive_session_keys(secret, key_type=0x88, key_length=16, host_id=HOST_ID, eid=eid)
    other_host = derive_session_keys(
        secret, key_type=0x88, key_length=16, host_id=b"\x81" * 8, eid=eid
    )
    other_eid = derive_session_keys(
        secret, key_type=0x88, key_length=16, host_id=HOST_ID, eid=eid[:-1] + b"\x36"
    )
    assert len({base, other_host, other_eid}) == 3


def test_derive_session_keys_refuses_what_sgp22_v2_does_not_define() -> None:
    secret, eid = bytes(32), bytes(16)
    with pytest.raises(ValueError):
        derive_session_keys(secret, key_type=0x80, key_length=16, host_id=HOST_ID, eid=eid)
    with pytest.raises(ValueError):
        derive_session_keys(secret, key_type=0x88, key_length=32, host_id=HOST_ID, eid=eid)
    with pytest.raises(ValueError):
        derive_session_keys(secret, key_type=0x88, key_length=16, host_id=HOST_ID, eid=bytes(10))
    with pytest.raises(ValueError):
        derive_session_keys(secret, key_type=0x88, key_length=16, host_id=b"", eid=eid)


def test_session_keys_repr_does_not_show_key_material() -> None:
    keys = SessionKeys(s_enc=b"\x11" * 16, s_mac=b"\x22" * 16, initial_mcv=b"\x33" * 16)
    for text in (repr(keys), str(keys), f"{keys}"):
        assert "11" not in text and "22" not in text and "33" not in text
        assert "redacted" in text


def test_session_keys_require_16_byte_values() -> None:
    with pytest.raises(ValueError):
        SessionKeys(s_enc=bytes(15), s_mac=bytes(16), initial_mcv=bytes(16))


@pytest.mark.parametrize("curve", CURVES)
def test_ecka_gives_both_sides_the_same_32_byte_secret(curve: Curve) -> None:
    smdp, euicc = generate_private_key(curve), generate_private_key(curve)
    secret = ecka(smdp, euicc.public_key())
    assert len(secret) == 32
    assert secret == ecka(euicc, smdp.public_key())


@pytest.mark.parametrize("curve", CURVES)
def test_ecka_secret_is_the_x_coordinate_of_the_shared_point(curve: Curve) -> None:
    # With private scalar 1 the shared point is the peer's public point itself.
    one = ec.derive_private_key(1, curve.ec_curve)
    peer = generate_private_key(curve).public_key()
    assert ecka(one, peer) == public_key_to_bytes(peer)[1:33]


def test_ecka_refuses_keys_on_different_curves() -> None:
    with pytest.raises(ValueError):
        ecka(
            generate_private_key(Curve.NIST_P256),
            generate_private_key(Curve.BRAINPOOL_P256R1).public_key(),
        )
