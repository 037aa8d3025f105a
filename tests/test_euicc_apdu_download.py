"""Whole RSP flows over the APDU interface, without lpac: the test LPA drives the virtual eUICC through
STORE DATA blocks of 120 bytes and GET RESPONSE (as lpac does) against an in-process SM-DP+, then
every ES10c function and the notifications (SGP.22 3.1.3, 3.2, 3.5, 5.7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from smdp.euicc.apdu import ApduEs10Channel, IsdrCard
from smdp.lpa import es10
from smdp.lpa.download import process_notifications
from smdp.services.profiles import import_profile
from smdp.store.tables import DownloadSession, Notification
from tests.conftest import RunningServer, require_ts48
from tests.es9_tools import HookedClient, codes, open_euicc, run_download


@pytest.mark.parametrize("curve", ["nist", "brainpool"])
async def test_ts48_download_and_profile_management_over_apdus(server: RunningServer, tmp_path: Path, curve: str) -> None:
    path = require_ts48()[0]
    imported = await import_profile(server.db, path.read_bytes(), matching_id="TS48-ACCEPT-1")
    euicc = open_euicc(tmp_path, server.manifest, curve)
    card = ApduEs10Channel(IsdrCard(euicc).transmit)

    result = await run_download(card, f"LPA:1${server.address}$TS48-ACCEPT-1")  # type: ignore[arg-type]
    assert result.ok, result
    assert result.iccid == imported.iccid
    # The BPP went in as separate commands, several of them chained over STORE DATA blocks.
    store_data = [c for c, _ in card.log if c[1] == 0xE2]
    assert any(c[2] == 0x11 for c in store_data)
    assert all(len(c) <= 5 + 120 for c in store_data)
    assert euicc.installed_profiles()[0].package == path.read_bytes()

    iccid = imported.iccid
    assert [p["iccid"] for p in es10.list_profiles(card)] == [bytes.fromhex(_swap(iccid))]
    assert es10.enable_profile(card, iccid) == 0
    assert es10.set_nickname(card, iccid, "travel") == 0
    (info,) = es10.list_profiles(card)
    assert (info["profileState"], info["profileNickname"]) == (1, "travel")
    assert es10.disable_profile(card, iccid) == 0
    assert es10.list_profiles(card)[0]["profileState"] == 0
    assert es10.delete_profile(card, iccid) == 0
    assert es10.list_profiles(card) == []

    # The test LPA delivered the install notification (the ProfileInstallationResult) itself.
    assert [n.event for n in es10.list_notifications(card)] == ["enable", "disable", "delete"]
    async with HookedClient() as client:
        deliveries = await process_notifications(card, client)  # type: ignore[arg-type]
    assert [d.delivered for d in deliveries] == [True] * 3
    assert es10.list_notifications(card) == []
    async with server.db.transaction() as db:
        session = (await db.exec(select(DownloadSession))).one()
        events = [n.event for n in (await db.exec(select(Notification).order_by(Notification.seq_number))).all()]
    assert session.step == "completed"
    assert events == ["install", "enable", "disable", "delete"]


def _swap(iccid: str) -> str:
    digits = iccid + "F" * (len(iccid) % 2)
    return "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))


async def test_wrong_confirmation_code_over_apdus_fails_with_8_2_7_3_8(server: RunningServer, tmp_path: Path) -> None:
    await import_profile(server.db, require_ts48()[0].read_bytes(), matching_id="TS48-CC-1", confirmation_code="1234")
    card = ApduEs10Channel(IsdrCard(open_euicc(tmp_path, server.manifest)).transmit)
    result = await run_download(card, f"LPA:1${server.address}$TS48-CC-1", confirmation_code="9999")  # type: ignore[arg-type]
    assert codes(result) == ("8.2.7", "3.8")


async def test_unknown_matching_id_over_apdus_fails_with_8_2_6_3_8(server: RunningServer, tmp_path: Path) -> None:
    card = ApduEs10Channel(IsdrCard(open_euicc(tmp_path, server.manifest)).transmit)
    result = await run_download(card, f"LPA:1${server.address}$NO-SUCH-ID")  # type: ignore[arg-type]
    assert codes(result) == ("8.2.6", "3.8")


def test_es10_functions_answer_over_apdus(tmp_path: Path, pki_manifest: Path) -> None:
    euicc = open_euicc(tmp_path, pki_manifest)
    card = ApduEs10Channel(IsdrCard(euicc).transmit)
    assert es10.get_eid(card) == euicc.eid
    assert es10.get_euicc_info1(card) == euicc.euicc_info1()
    assert es10.get_euicc_info2(card)["euiccCiPKIdListForVerification"]
    assert len(es10.get_euicc_challenge(card)) == 16
    # ES10a: EuiccConfiguredAddresses and SetDefaultDpAddress
    assert card.process(bytes.fromhex("BF3F0E800C736D64702E6578616D706C65")) == bytes.fromhex("BF3F03800100")
    addresses = card.process(bytes.fromhex("BF3C00"))
    assert b"smdp.example" in addresses and b"lpa.ds.gsma.com" in addresses
    # GetRAT, EuiccMemoryReset (all three kinds), CancelSession without a session, notifications
    assert card.process(bytes.fromhex("BF4300"))[:2] == bytes.fromhex("BF43")
    assert card.process(bytes.fromhex("BF340482020560")) == bytes.fromhex("BF3403800100")  # the address went
    assert b"smdp.example" not in card.process(bytes.fromhex("BF3C00"))
    cancel = card.process(es10_cancel_request())
    assert cancel[:2] == bytes.fromhex("BF41")
    assert es10.remove_notification(card, 42) == 1  # nothingToDelete
    assert es10.retrieve_notification(card, 42) is None


def es10_cancel_request() -> bytes:
    from smdp.codec import asn1

    return asn1.rsp().encode("CancelSessionRequest", {"transactionId": bytes(16), "reason": 0})
