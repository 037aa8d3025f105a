"""Virtual eUICC, after the download: Notifications (SGP.22 5.7.9-5.7.11), ES10c profile management
(5.7.15-5.7.21), ES10a addresses, and the persistent state."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from test_euicc_fakes import (  # noqa: F401 - euicc_pki is a fixture
    World,
    decode,
    euicc_pki,
    install,
    make_iccid,
    new_world,
)

from smdp.codec import asn1
from smdp.codec.tlv import iter_tlvs, read_tlv
from smdp.crypto import ecdsa
from smdp.euicc import EuiccCommandError, StateError, VirtualEuicc
from smdp.lpa import es10
from smdp.profiles.saip import encode_iccid

NOTIFY_ALL = [
    {"profileManagementOperation": (b"\x70", 4), "notificationAddress": "events.example.com"},  # enable/disable/delete
    {"profileManagementOperation": (b"\x10", 4), "notificationAddress": "deletes.example.com"},  # delete only
]


@pytest.fixture
def world(euicc_pki: Path, tmp_path: Path) -> World:
    return new_world(euicc_pki, tmp_path, "nist")


def result(world: World, request: bytes, type_name: str, field: str) -> int:
    return decode(type_name, world.euicc.process(request))[field]


def enable(world: World, iccid: str) -> int:
    return es10.enable_profile(world.euicc, iccid)


# --- Notifications --------------------------------------------------------------------------------


def test_notifications_list_retrieve_and_remove(world: World) -> None:
    first, second = make_iccid(1), make_iccid(2)
    install(world, first)
    install(world, second)
    listed = es10.list_notifications(world.euicc)
    assert [(n.event, n.iccid, n.address) for n in listed] == [
        ("install", first, world.server.address),
        ("install", second, world.server.address),
    ]
    seqs = [n.seq_number for n in listed]
    assert seqs[1] > seqs[0]

    pir = es10.retrieve_notification(world.euicc, seqs[1])
    assert pir == world.euicc.pending_notifications()[1].der
    all_pending = decode("RetrieveNotificationsListResponse", world.euicc.process(bytes.fromhex("BF2B00")))
    assert all_pending[0] == "notificationList" and len(all_pending[1]) == 2

    assert es10.remove_notification(world.euicc, seqs[0]) == 0  # ok
    assert es10.remove_notification(world.euicc, seqs[0]) == 1  # nothingToDelete
    assert [n.seq_number for n in es10.list_notifications(world.euicc)] == [seqs[1]]
    assert es10.retrieve_notification(world.euicc, seqs[0]) is None  # noResultAvailable


def test_list_notification_filters_by_operation(world: World) -> None:
    iccid = make_iccid(3)
    install(world, iccid, notificationConfigurationInfo=NOTIFY_ALL)
    assert enable(world, iccid) == 0
    request = asn1.rsp().encode("ListNotificationRequest", {"profileManagementOperation": (b"\x40", 2)})
    kind, listed = decode("ListNotificationResponse", world.euicc.process(request))
    assert kind == "notificationMetadataList"
    assert [m["notificationAddress"] for m in listed] == ["events.example.com"]


def test_enable_disable_delete_create_signed_notifications_for_configured_addresses(world: World) -> None:
    iccid = make_iccid(4)
    install(world, iccid, notificationConfigurationInfo=NOTIFY_ALL)
    assert enable(world, iccid) == 0
    assert es10.disable_profile(world.euicc, iccid) == 0
    assert es10.delete_profile(world.euicc, iccid) == 0
    events = [(n.event, n.address) for n in world.euicc.pending_notifications()]
    assert events == [
        ("install", world.server.address),
        ("enable", "events.example.com"),
        ("disable", "events.example.com"),
        ("delete", "events.example.com"),
        ("delete", "deletes.example.com"),
    ]
    other = world.euicc.pending_notifications()[1].der
    tbs, signature, euicc_cert, eum_cert = [t.raw for t in iter_tlvs(read_tlv(other).value)]
    assert read_tlv(other).tag == 0x30
    key = x509.load_der_x509_certificate(euicc_cert).public_key()
    ecdsa.verify(key, tbs, read_tlv(signature).value)  # over the tbsOtherNotification TLV
    assert x509.load_der_x509_certificate(eum_cert).subject is not None
    metadata = decode("NotificationMetadata", tbs)
    assert metadata["iccid"] == encode_iccid(iccid) and metadata["profileManagementOperation"] == (b"\x40", 2)


# --- Enable / Disable / Delete ----------------------------------------------------------------------


def test_only_one_profile_is_enabled_at_a_time(world: World) -> None:
    first, second = make_iccid(5), make_iccid(6)
    install(world, first)
    install(world, second)
    assert enable(world, first) == 0
    assert enable(world, first) == 2  # profileNotInDisabledState
    assert enable(world, second) == 0
    states = {p.iccid: p.state for p in world.euicc.installed_profiles()}
    assert states == {first: "disabled", second: "enabled"}


def test_profile_management_result_codes(world: World) -> None:
    iccid = make_iccid(7)
    missing = make_iccid(8)
    install(world, iccid)
    assert enable(world, missing) == 1  # iccidOrAidNotFound
    assert es10.disable_profile(world.euicc, iccid) == 2  # profileNotInEnabledState
    assert enable(world, iccid) == 0
    assert es10.delete_profile(world.euicc, iccid) == 2  # profileNotInDisabledState: enabled
    assert es10.delete_profile(world.euicc, missing) == 1
    assert es10.disable_profile(world.euicc, iccid) == 0
    aid = world.euicc.installed_profiles()[0].isdp_aid
    assert es10.delete_profile(world.euicc, aid) == 0  # by ISD-P AID
    assert world.euicc.installed_profiles() == []


def test_profile_policy_rules_forbid_disable_and_delete(world: World) -> None:
    locked, other = make_iccid(9), make_iccid(10)
    install(world, locked, profilePolicyRules=(b"\x60", 3))  # ppr1 + ppr2
    install(world, other)
    assert enable(world, locked) == 0
    assert es10.disable_profile(world.euicc, locked) == 3  # disallowedByPolicy
    assert enable(world, other) == 3  # would disable the ppr1 Profile
    assert es10.delete_profile(world.euicc, other) == 0
    assert [p.iccid for p in world.euicc.installed_profiles()] == [locked]


def test_set_nickname(world: World) -> None:
    iccid = make_iccid(11)
    install(world, iccid)
    assert es10.set_nickname(world.euicc, iccid, "travel") == 0
    assert es10.set_nickname(world.euicc, make_iccid(12), "x") == 1  # iccidNotFound
    [info] = es10.list_profiles(world.euicc)
    assert info["profileNickname"] == "travel"


# --- GetProfilesInfo, GetEID, addresses ------------------------------------------------------------


def test_get_profiles_info_reports_metadata_and_honours_tag_list(world: World) -> None:
    iccid = make_iccid(13)
    install(world, iccid, profileClass=0, notificationConfigurationInfo=NOTIFY_ALL[:1])
    [info] = es10.list_profiles(world.euicc)
    assert info["iccid"] == encode_iccid(iccid)
    assert info["profileState"] == 0 and info["profileClass"] == 0
    assert info["serviceProviderName"] == "smdp test"
    assert info["notificationConfigurationInfo"][0]["notificationAddress"] == "events.example.com"
    request = asn1.rsp().encode("ProfileInfoListRequest", {"tagList": bytes.fromhex("5A9F70")})
    listing = read_tlv(read_tlv(world.euicc.process(request)).value)
    [profile_info] = iter_tlvs(listing.value)
    assert profile_info.tag == 0xE3 and [t.tag for t in iter_tlvs(profile_info.value)] == [0x5A, 0x9F70]
    by_iccid = asn1.rsp().encode("ProfileInfoListRequest", {"searchCriteria": ("iccid", encode_iccid(make_iccid(14)))})
    assert decode("ProfileInfoListResponse", world.euicc.process(by_iccid)) == ("profileInfoListOk", [])


def test_get_eid_and_euicc_info(world: World) -> None:
    assert es10.get_eid(world.euicc) == world.euicc.eid
    info1 = decode("EUICCInfo1", world.euicc.process(bytes.fromhex("BF2000")))
    info2 = es10.get_euicc_info2(world.euicc)
    assert info1["euiccCiPKIdListForVerification"] == [world.server.chain.ci_pkid]
    assert info1["euiccCiPKIdListForSigning"] == [world.server.chain.ci_pkid]
    assert info2["euiccCiPKIdListForSigning"] == [world.server.chain.ci_pkid]


def test_rules_authorisation_table_allows_what_is_not_forbidden(euicc_pki: Path, tmp_path: Path) -> None:
    world = new_world(euicc_pki, tmp_path, "nist", forbidden_pprs=["ppr1"])
    [rule] = decode("GetRatResponse", world.euicc.process(bytes.fromhex("BF4300")))["rat"]
    assert rule["pprIds"] == (b"\x20", 3)  # ppr2 only
    assert rule["allowedOperators"] == [{"mccMnc": bytes.fromhex("EEEEEE")}]


def test_default_dp_address_and_root_ds(world: World) -> None:
    addresses = decode("EuiccConfiguredAddressesResponse", world.euicc.process(bytes.fromhex("BF3C00")))
    assert addresses == {"rootDsAddress": "lpa.ds.gsma.com"}
    request = asn1.rsp().encode("SetDefaultDpAddressRequest", {"defaultDpAddress": "smdp.example.com"})
    assert result(world, request, "SetDefaultDpAddressResponse", "setDefaultDpAddressResult") == 0
    addresses = decode("EuiccConfiguredAddressesResponse", world.euicc.process(bytes.fromhex("BF3C00")))
    assert addresses["defaultDpAddress"] == "smdp.example.com"


def test_memory_reset_deletes_operational_profiles(world: World) -> None:
    operational, test_profile = make_iccid(15), make_iccid(16)
    install(world, operational)
    install(world, test_profile, profileClass=0)
    request = asn1.rsp().encode("EuiccMemoryResetRequest", {"resetOptions": (b"\x80", 1)})
    assert result(world, request, "EuiccMemoryResetResponse", "resetResult") == 0
    assert [p.iccid for p in world.euicc.installed_profiles()] == [test_profile]
    assert result(world, request, "EuiccMemoryResetResponse", "resetResult") == 1  # nothingToDelete


def test_unknown_or_malformed_commands_raise_command_errors(world: World) -> None:
    with pytest.raises(EuiccCommandError) as unknown:
        world.euicc.process(bytes.fromhex("BF7F00"))
    assert unknown.value.sw == 0x6A88
    with pytest.raises(EuiccCommandError):
        world.euicc.process(bytes.fromhex("BF2D"))
    with pytest.raises(EuiccCommandError):
        world.euicc.process(bytes.fromhex("BF2000") + b"\x00")  # trailing byte


# --- persistence ---------------------------------------------------------------------------------------


def test_state_survives_reopening(world: World) -> None:
    first, second = make_iccid(17), make_iccid(18)
    install(world, first)
    install(world, second, notificationConfigurationInfo=NOTIFY_ALL)
    enable(world, second)
    es10.set_nickname(world.euicc, first, "home")
    before = world.euicc.installed_profiles()
    pending = world.euicc.pending_notifications()

    reopened = VirtualEuicc.open(world.state_path)
    assert reopened.eid == world.euicc.eid
    assert reopened.installed_profiles() == before
    assert [(n.seq_number, n.der) for n in reopened.pending_notifications()] == [(n.seq_number, n.der) for n in pending]
    # the sequence counter carries on: the next Notification gets a fresh number
    es10.disable_profile(reopened, second)
    assert reopened.pending_notifications()[-1].seq_number == pending[-1].seq_number + 1


def test_state_file_is_private_and_holds_no_keys(world: World) -> None:
    install(world, make_iccid(19))
    mode = stat.S_IMODE(world.state_path.stat().st_mode)
    assert mode == 0o600
    text = world.state_path.read_text()
    assert "PRIVATE KEY" not in text
    doc = json.loads(text)
    assert set(doc) >= {"eid", "profiles", "notifications", "next_seq_number"}
    assert not list(world.state_path.parent.glob("*.tmp"))


def test_opening_a_missing_state_needs_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(StateError):
        VirtualEuicc.open(tmp_path / "nothing.json")


def test_state_of_another_eid_is_refused(world: World, tmp_path: Path) -> None:
    doc = json.loads(world.state_path.read_text())
    doc["eid"] = "89049032000000000000000000000000"
    world.state_path.write_text(json.dumps(doc))
    with pytest.raises(StateError):
        VirtualEuicc.open(world.state_path)
