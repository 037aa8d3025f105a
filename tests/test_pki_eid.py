"""EID check digits, ISO/IEC 7064 MOD 97-10 (SGP.02 Annex J, SGP.29)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smdp.pki.eid import eid_check_digits, is_valid_eid, random_eid

# Known-answer EIDs, taken as data:
# - the GSMA SGP.26 test eUICC (subject serialNumber of CERT_EUICC_ECDSA_NIST.der / _BRP.der);
SGP26_EID = "89049032123451234512345678901235"
# - osmocom pySim, contrib/eidtool.py, usage example "eidtool.py --verify ...";
PYSIM_EID = "89882119900000000000000000001654"
# - Infineon optiga-connect-iot wiki, "How to verify an EID", examples of valid EIDs.
INFINEON_EIDS = [
    "89034011560010000000000000000121",
    "89001012012341234012345678901224",
    "89044011112233441122334411223321",
]

digits30 = st.text(alphabet="0123456789", min_size=30, max_size=30)


@pytest.mark.parametrize("eid", [SGP26_EID, PYSIM_EID, *INFINEON_EIDS])
def test_eid_check_digits_reproduce_known_eids(eid: str) -> None:
    assert eid_check_digits(eid[:30]) == eid[30:]
    assert is_valid_eid(eid)


@pytest.mark.parametrize(
    "eid",
    [
        SGP26_EID[:-1] + "6",  # wrong check digit
        SGP26_EID[:-1],  # 31 digits
        SGP26_EID + "0",  # 33 digits
        "8904903212345123451234567890123A",
        "8904903212345123451234567890123\u0665",  # ARABIC-INDIC DIGIT FIVE: isdigit() but not ASCII
        "",
    ],
)
def test_is_valid_eid_rejects_malformed_eids(eid: str) -> None:
    assert not is_valid_eid(eid)


@pytest.mark.parametrize("body", ["1" * 29, "1" * 31, "x" * 30, "\u0661" * 30])
def test_eid_check_digits_rejects_malformed_body(body: str) -> None:
    with pytest.raises(ValueError):
        eid_check_digits(body)


@given(digits30)
def test_eid_with_computed_check_digits_is_valid(body: str) -> None:
    check = eid_check_digits(body)
    assert len(check) == 2 and check.isdigit()
    assert is_valid_eid(body + check)


@given(digits30, st.integers(0, 29), st.integers(1, 9))
def test_eid_check_digits_detect_any_single_digit_change(body: str, pos: int, delta: int) -> None:
    eid = body + eid_check_digits(body)
    changed = eid[:pos] + str((int(eid[pos]) + delta) % 10) + eid[pos + 1 :]
    assert not is_valid_eid(changed)


def test_random_eid_is_valid_and_starts_with_ein() -> None:
    for ein in ("89049032", "8904", "890490321234"):
        eid = random_eid(ein)
        assert eid.startswith(ein) and is_valid_eid(eid)


def test_random_eid_rejects_malformed_ein() -> None:
    for ein in ("", "89A", "9" * 31):
        with pytest.raises(ValueError):
            random_eid(ein)
