"""Typed profile metadata (smdp.profiles.metadata): every bad field named where metadata enter (import,
profile types, the CLI), the StoreMetadataRequest built from the checked model, stored rows still downloading."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from smdp.codec import asn1
from smdp.codec.bits import bit_names
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.metadata import MetadataError, NotificationConfiguration, ProfileMetadata
from smdp.rsp.metadata import PPR_BITS, store_metadata_request
from smdp.services.profile_types import ProfileTypeError, create_profile_type
from smdp.services.profiles import ProfileImportError, import_profile
from smdp.store.db import Database
from smdp.store.tables import Profile
from tests.conftest import RunningServer
from tests.es9_tools import open_euicc, run_download

ROOT = Path(__file__).resolve().parents[1]
ICCID = "8949000000000000018"
GOOD = {"serviceProviderName": "Gulf Travel", "profileName": "Bahrain week", "profileClass": "operational"}
POLICY = {"version": 1, "name": "Week", "dataCaps": [{"limit": "5GB", "period": "week", "scope": "any", "action": "notify"}],
          "profilePolicyRules": ["ppr2"]}  # fmt: skip


def demo_profile(iccid: str = ICCID) -> bytes:
    return build_demo_profile(iccid, "001010000000001", bytes(16), bytes(16))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**GOOD, "profileClass": "prod"}, "metadata: profileClass must be one of test, provisioning, operational, not 'prod'"),
        ({"serviceProvidername": "x"}, "metadata: unknown field 'serviceProvidername' (did you mean 'serviceProviderName'?)"),
        ({"profilename": "x"}, "metadata: unknown field 'profilename' (did you mean 'profileName'?)"),
        ({"owner": "x"}, "metadata: unknown field 'owner' (known: serviceProviderName, profileName, profileClass, iconType, "
                         "icon, profilePolicyRules, notificationConfigurationInfo, policy)"),
        (["x"], "metadata: must be a JSON object, not a list"),
        ({"serviceProviderName": 5}, "metadata: serviceProviderName must be a string, not a number"),
        ({"serviceProviderName": "x" * 33}, "metadata: serviceProviderName is 33 characters long, at most 32 are allowed"),
        ({"profileName": "x" * 65}, "metadata: profileName is 65 characters long, at most 64 are allowed"),
        ({"profileClass": 2}, "metadata: profileClass must be one of test, provisioning, operational, not 2"),
        ({"iconType": "gif", "icon": "AAAA"}, "metadata: iconType must be one of jpg, png, not 'gif'"),
        ({"icon": "AAAA"}, "metadata: iconType is required with icon"),
        ({"iconType": "png"}, "metadata: icon is required with iconType"),
        ({"iconType": "png", "icon": 7}, "metadata: icon must be a base64 string, not a number"),
        ({"iconType": "png", "icon": "AAA"},
         "metadata: icon is not base64: base64 value length 3 is not a multiple of 4 (padding missing?)"),
        ({"iconType": "png", "icon": "AAAA" * 342}, "metadata: icon is 1026 bytes, at most 1024 are allowed"),
        ({"profilePolicyRules": "ppr1"}, "metadata: profilePolicyRules must be a list, not a string"),
        ({"profilePolicyRules": ["ppr3"]}, "metadata: profilePolicyRules[0] must be one of pprUpdateControl, ppr1, ppr2, not 'ppr3'"),
        ({"profilePolicyRules": ["ppr1", "ppr1"]}, "metadata: profilePolicyRules lists 'ppr1' twice"),
        ({"notificationConfigurationInfo": {"events": []}}, "metadata: notificationConfigurationInfo must be a list, not an object"),
        ({"notificationConfigurationInfo": ["x"]},
         "metadata: notificationConfigurationInfo[0] must be an object with events and address, not a string"),
        ({"notificationConfigurationInfo": [{"events": ["install"], "adress": "a"}]},
         "metadata: unknown field 'notificationConfigurationInfo[0].adress' (did you mean 'address'?)"),
        ({"notificationConfigurationInfo": [{"events": ["install"]}]},
         "metadata: notificationConfigurationInfo[0].address is required"),
        ({"notificationConfigurationInfo": [{"events": ["instal"], "address": "a"}]},
         "metadata: notificationConfigurationInfo[0].events[0] must be one of install, enable, disable, delete, not 'instal'"),
        ({"notificationConfigurationInfo": [{"events": [], "address": "a"}]},
         "metadata: notificationConfigurationInfo[0].events must name at least one of install, enable, disable, delete"),
        ({"notificationConfigurationInfo": [{"events": ["install"], "address": ""}]},
         "metadata: notificationConfigurationInfo[0].address must not be empty"),
        ({"policy": {**POLICY, "validityDays": 0}}, "metadata: policy.validityDays: 0 is outside 1..3650"),
        ({"policy": {"version": 1}}, "metadata: policy.name: is required"),
        ({"policy": []}, "metadata: policy: must be an object, got list"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(doc: object, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        ProfileMetadata.from_json(doc)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
    with pytest.raises(MetadataError):  # the dict API of smdp.rsp.metadata checks the same way
        store_metadata_request(ICCID, doc)  # type: ignore[arg-type]


def test_a_policy_error_names_the_policy_field() -> None:
    with pytest.raises(MetadataError) as caught:
        ProfileMetadata.from_json({"policy": {**POLICY, "dataCaps": [{**POLICY["dataCaps"][0], "limit": "5XB"}]}})
    assert caught.value.field == "policy.dataCaps[0].limit"
    assert str(caught.value).startswith("metadata: policy.dataCaps[0].limit: '5XB' is not a quantity")


@pytest.mark.parametrize(
    "doc",
    [
        {},
        GOOD,
        {"serviceProviderName": "ACME", "profileName": "Demo"},  # a first-release row: no profileClass
        {**GOOD, "profileClass": "test", "iconType": "png", "icon": "iVBORw0KGgo=", "profilePolicyRules": ["ppr1", "pprUpdateControl"],
         "notificationConfigurationInfo": [{"events": ["install", "delete"], "address": "smdp.example.com"}]},
        {**GOOD, "notificationConfigurationInfo": []},
        {**GOOD, "policy": POLICY},
    ],
)
def test_good_metadata_round_trip(doc: dict) -> None:
    meta = ProfileMetadata.from_json(doc)
    assert ProfileMetadata.from_json(meta.to_json()) == meta
    assert ProfileMetadata.from_json(json.loads(json.dumps(meta.to_json()))) == meta
    assert store_metadata_request(ICCID, doc) == store_metadata_request(ICCID, meta)


def test_the_store_metadata_request_is_built_from_the_model() -> None:
    meta = ProfileMetadata.from_json({**GOOD, "profileClass": "provisioning", "iconType": "jpg", "icon": "AQID",
                                      "profilePolicyRules": ["ppr1"], "policy": POLICY})  # fmt: skip
    value = asn1.decode_exact(asn1.rsp(), "StoreMetadataRequest", store_metadata_request(ICCID, meta))
    assert (value["serviceProviderName"], value["profileName"]) == ("Gulf Travel", "Bahrain week")
    assert (value["profileClass"], value["iconType"], value["icon"]) == (1, 0, b"\x01\x02\x03")
    assert bit_names(value["profilePolicyRules"], PPR_BITS) == ["ppr1", "ppr2"]  # its own plus the policy's
    assert "notificationConfigurationInfo" not in value and "serviceSpecificDataStoredInEuicc" in value


def test_notifications_default_to_the_sessions_address_unless_given() -> None:
    default = (NotificationConfiguration(("enable", "disable", "delete"), "smdp.test:8443"),)
    assert ProfileMetadata.from_json(GOOD).with_default_notifications("smdp.test:8443").notifications == default
    assert ProfileMetadata.from_json({**GOOD, "notificationConfigurationInfo": []}).with_default_notifications("x").notifications == ()
    assert ProfileMetadata.from_json({**GOOD, "notificationConfigurationInfo": None}).notifications == ()  # as before: present = as given




async def test_import_refuses_a_misspelt_field_and_stores_nothing(db: Database) -> None:
    with pytest.raises(ProfileImportError) as caught:
        await import_profile(db, demo_profile(), metadata={**GOOD, "serviceProvidername": "x"})
    assert str(caught.value) == "metadata: unknown field 'serviceProvidername' (did you mean 'serviceProviderName'?)"
    with pytest.raises(ProfileImportError, match="metadata: profileClass must be one of test, provisioning, operational, not 'prod'"):
        await import_profile(db, demo_profile(), metadata={**GOOD, "profileClass": "prod"})
    async with db.transaction() as session:
        assert (await session.exec(select(Profile))).all() == []
    imported = await import_profile(db, demo_profile(), metadata=GOOD)
    async with db.transaction() as session:
        assert (await session.exec(select(Profile))).one().profile_metadata == GOOD  # stored as given
    assert imported.iccid == ICCID


async def test_profile_types_refuse_bad_metadata_naming_the_field(db: Database) -> None:
    with pytest.raises(ProfileTypeError) as caught:
        await create_profile_type(db, "t", demo_profile(), metadata={**GOOD, "profileClas": "test"})
    assert str(caught.value) == "metadata: unknown field 'profileClas' (did you mean 'profileClass'?)"


def test_cli_import_with_a_misspelt_field_prints_one_line_and_fails(tmp_path: Path) -> None:
    package = tmp_path / "profile.der"
    package.write_bytes(demo_profile())
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({**GOOD, "serviceProvidername": "Gulf"}))
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "smdp.cli", "profile", "import", str(package), "--metadata", str(meta),
         "--data-dir", str(data)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("smdp: ") and "unknown field 'serviceProvidername'" in lines[0], lines[0]
    assert "did you mean 'serviceProviderName'?" in lines[0]
    assert done.stdout == ""


async def test_a_stored_row_that_is_not_valid_is_logged_and_refused(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A row written before the checks (or edited by hand): the device gets 1.2/4.2, the log names the field."""
    imported = await import_profile(server.db, demo_profile("8949000000000000026"), matching_id="BAD-META", metadata=GOOD)
    async with server.db.transaction() as db:
        profile = (await db.exec(select(Profile).where(Profile.iccid == imported.iccid))).one()
        profile.profile_metadata = {**GOOD, "profileClass": "prod"}
        db.add(profile)
    with caplog.at_level(logging.ERROR, logger="smdp.services.download"):
        result = await run_download(open_euicc(tmp_path, server.manifest), f"LPA:1${server.address}$BAD-META")
    assert not result.ok and (result.subject_code, result.reason_code) == ("1.2", "4.2")
    assert any("profileClass must be one of" in r.getMessage() and imported.iccid in r.getMessage() for r in caplog.records)
