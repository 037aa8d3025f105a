"""Profile types and batch generation against the database (smdp.services.profile_types): what is
stored, the key file, the activation codes, and that failures leave nothing half-created."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from smdp.crypto.milenage import compute_opc
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.generate import IdentityRange
from smdp.profiles.saip import luhn_check_digit, validate_profile_package
from smdp.services.profile_types import ProfileTypeError, create_profile_type, generate_profiles, list_profile_types
from smdp.services.profiles import open_package
from smdp.store.db import Database
from smdp.store.tables import Profile, ProfileType
from tests.conftest import table_rows

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "policies"
OP = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
METADATA = {"serviceProviderName": "Gulf Travel", "profileName": "Bahrain week", "profileClass": "operational"}


def demo_template() -> bytes:
    return build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16))


def bahrain() -> dict:
    return json.loads((EXAMPLES / "bahrain-week.json").read_text())





async def test_generating_1000_profiles_gives_unique_valid_identities_and_distinct_keys(db: Database, tmp_path: Path) -> None:
    await create_profile_type(db, "bahrain", demo_template(), metadata=METADATA, policy=bahrain())
    result = await generate_profiles(db, "bahrain", IdentityRange("894900000000000000", "001010000000001", 1000),
                                     key_file=tmp_path / "keys.csv", op=OP, activation_codes=tmp_path / "ac.csv")  # fmt: skip
    assert result.count == 1000
    assert stat.S_IMODE(os.stat(tmp_path / "keys.csv").st_mode) == 0o600
    with (tmp_path / "keys.csv").open() as handle:
        keys = list(csv.DictReader(handle))
    assert len(keys) == 1000
    assert len({k["iccid"] for k in keys}) == len({k["imsi"] for k in keys}) == 1000
    assert len({k["ki"] for k in keys}) == len({k["opc"] for k in keys}) == 1000
    assert all(bytes.fromhex(k["opc"]) == compute_opc(bytes.fromhex(k["ki"]), OP) for k in keys)
    profiles = {p.iccid: p for p in await table_rows(db, Profile)}
    assert set(profiles) == {k["iccid"] for k in keys}
    for k in keys[:: 97]:  # a sample: each stored package carries exactly its key-file values
        package = validate_profile_package(open_package(db.sealer, profiles[k["iccid"]]))
        assert (package.iccid, package.ef_iccid, package.imsi) == (k["iccid"], k["iccid"], k["imsi"])
        _, parameters = package.named("akaParameter")[0].value["algoConfiguration"]
        assert (parameters["key"].hex().upper(), parameters["opc"].hex().upper()) == (k["ki"], k["opc"])
    with (tmp_path / "ac.csv").open() as handle:
        codes = list(csv.DictReader(handle))
    assert all(profiles[c["iccid"]].matching_id and c["activation_code"].endswith("$" + profiles[c["iccid"]].matching_id)
               for c in codes)  # fmt: skip
    assert {p.state for p in profiles.values()} == {"Released"}
    assert all(p.profile_type == "bahrain" and p.profile_metadata["policy"]["name"] == "Bahrain week" for p in profiles.values())
    (listed,) = await list_profile_types(db)
    assert listed["profiles"] == {"Released": 1000} and listed["policy"] == "Bahrain week"


async def test_without_activation_codes_profiles_are_stock_for_es2_orders(db: Database, tmp_path: Path) -> None:
    await create_profile_type(db, "plain", demo_template())
    await generate_profiles(db, "plain", IdentityRange("894900000000000100", "001010000000100", 3), key_file=tmp_path / "k.csv")
    assert {(p.state, p.matching_id) for p in await table_rows(db, Profile)} == {("Available", None)}


@pytest.mark.parametrize(
    ("template", "policy", "metadata", "message"),
    [
        (b"\x30\x00", None, None, "template: PE #0"),
        (demo_template()[:-4], None, None, "template: profile package is not a sequence of DER TLVs"),
        (demo_template(), {**bahrain(), "validityDays": 0}, None, "policy: validityDays: 0 is outside 1..3650"),
        (demo_template(), {"version": 1}, None, "policy: name: is required"),
        (demo_template(), None, {"serviceProviderName": "x", "profileName": "y", "profileClass": "vip"}, "metadata"),
    ],
)
async def test_malformed_types_are_rejected_and_nothing_is_stored(
    db: Database, template: bytes, policy: dict | None, metadata: dict | None, message: str
) -> None:
    with pytest.raises(ProfileTypeError) as caught:
        await create_profile_type(db, "broken", template, policy=policy, metadata=metadata)
    assert message in str(caught.value)
    assert await table_rows(db, ProfileType) == []


async def test_a_profile_type_name_is_unique(db: Database) -> None:
    await create_profile_type(db, "one", demo_template())
    with pytest.raises(ProfileTypeError, match="already exists"):
        await create_profile_type(db, "one", demo_template())


async def test_a_run_that_fails_midway_removes_what_it_created_and_publishes_no_key_file(db: Database, tmp_path: Path) -> None:
    await create_profile_type(db, "t", demo_template())
    # An ICCID the run will reach in its third batch is taken already.
    await generate_profiles(db, "t", IdentityRange("894900000000001200", "001010000001200", 1), key_file=tmp_path / "first.csv")
    with pytest.raises(ProfileTypeError, match="already in use"):
        await generate_profiles(db, "t", IdentityRange("894900000000000000", "001010000000000", 1500),
                                key_file=tmp_path / "keys.csv", activation_codes=tmp_path / "ac.csv")  # fmt: skip
    assert [p.iccid for p in await table_rows(db, Profile)] == ["894900000000001200" + luhn_check_digit("894900000000001200")]
    assert not (tmp_path / "keys.csv").exists() and not (tmp_path / "ac.csv").exists()
    assert not list(tmp_path.glob(".*.partial"))  # no half-written key or code file either


async def test_an_existing_key_file_is_never_overwritten(db: Database, tmp_path: Path) -> None:
    await create_profile_type(db, "t", demo_template())
    (tmp_path / "keys.csv").write_text("precious")
    with pytest.raises(ProfileTypeError, match="refusing to overwrite"):
        await generate_profiles(db, "t", IdentityRange("894900000000000000", "001010000000000", 2), key_file=tmp_path / "keys.csv")
    assert (tmp_path / "keys.csv").read_text() == "precious" and await table_rows(db, Profile) == []


async def test_unknown_profile_type_is_named(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ProfileTypeError, match="no profile type named 'nope'"):
        await generate_profiles(db, "nope", IdentityRange("894900000000000000", "001010000000000", 1), key_file=tmp_path / "k")
