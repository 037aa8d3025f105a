"""Genuine eUICCs behaving as devices do in the field must not corrupt the profile lifecycle (SGP.22 3.3, 5.6.4).

Each test is one of the field scenarios that used to corrupt state: a stale error result after a successful
retry, an old order's BPP installed after a re-order, a result for a session that never got a BPP,
notifications about someone else's profile, and unauthenticated requests naming a victim's session.
Everything runs over HTTPS against the real server with the test LPA and virtual eUICCs.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from sqlmodel import select

from smdp.codec.b64 import b64decode, b64encode
from smdp.lpa.download import process_notifications
from smdp.lpa.es9client import Es9Error
from smdp.services.profiles import import_profile, list_profiles
from smdp.store.tables import DownloadSession, Notification, Profile
from tests.conftest import RunningServer
from tests.device_tools import demo_iccid, demo_package, new_device
from tests.es2_tools import CallbackEndpoint, es2_error, operator_client, start_endpoint, stock_profiles
from tests.es9_tools import HookedClient, codes, run_download


async def _profile(server: RunningServer, iccid: str) -> Profile:
    async with server.db.transaction() as db:
        return (await db.exec(select(Profile).where(Profile.iccid == iccid))).one()


async def _session(server: RunningServer, transaction_id: str) -> DownloadSession:
    async with server.db.transaction() as db:
        return (await db.exec(select(DownloadSession).where(DownloadSession.transaction_id == transaction_id))).one()


async def _notifications(server: RunningServer, iccid: str) -> list[Notification]:
    async with server.db.transaction() as db:
        return list((await db.exec(select(Notification).where(Notification.iccid == iccid).order_by(Notification.id))).all())


def _holding_notifications(client: HookedClient) -> HookedClient:
    """The LPA loses its connection when it sends notifications: they stay pending on the eUICC."""

    def lost(body: dict[str, Any]) -> dict[str, Any]:
        raise Es9Error(None, None, "connection lost", "handleNotification")

    client.request_hooks["handleNotification"] = lost
    return client


def _corrupt_bpp(answer: dict[str, Any]) -> dict[str, Any]:
    """Damage the last segment of the BPP in transit: the eUICC fails to install and signs an error result."""
    bpp = bytearray(b64decode(answer["boundProfilePackage"]))
    bpp[-3] ^= 0x01
    return {**answer, "boundProfilePackage": b64encode(bytes(bpp))}


async def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _released_order_with_callbacks(
    stack: AsyncExitStack, server: RunningServer
) -> tuple[CallbackEndpoint, str, dict[str, Any]]:
    """An operator with a callback endpoint, and a released order (ICCID, ConfirmOrder answer) of one stock profile."""
    endpoint = await start_endpoint(stack, CallbackEndpoint())
    es2 = await operator_client(server, "acme", endpoint.url)
    stack.push_async_callback(es2.close)
    [iccid] = await stock_profiles(server, "acme", 1)
    await es2.call("downloadOrder", iccid=iccid)
    return endpoint, iccid, await es2.call("confirmOrder", iccid=iccid, releaseFlag=True)


async def test_stale_error_result_after_a_successful_retry_changes_nothing(
    server: RunningServer, tmp_path: Path
) -> None:
    """Scenario 1: attempt 1's error PIR stays pending in the LPA; attempt 2 installs; the stale error PIR
    arrives last.  The profile stays Installed, the activation code gives no second BPP, the operator is
    not told "installation failed"."""
    async with AsyncExitStack() as stack:
        endpoint, iccid, confirmed = await _released_order_with_callbacks(stack, server)
        code = f"LPA:1${server.address}${confirmed['matchingId']}"
        device = new_device(tmp_path, server.manifest, "phone")

        lossy = _holding_notifications(HookedClient())
        lossy.response_hooks["getBoundProfilePackage"] = _corrupt_bpp
        first = await run_download(device.euicc, code, lossy)
        await lossy.close()
        assert not first.ok and first.stage == "loadBoundProfilePackage" and not first.notification_delivered
        assert (await _profile(server, iccid)).state == "Downloaded"

        second = await run_download(device.euicc, code)
        assert second.ok, second.to_json()
        assert (await _profile(server, iccid)).state == "Installed"

        client = HookedClient()
        stack.push_async_callback(client.close)
        deliveries = await process_notifications(device.euicc, client)  # the stale error result, at last
        assert [(d.event, d.delivered) for d in deliveries] == [("install", True)]  # acknowledged (204)
        profile = await _profile(server, iccid)
        assert profile.state == "Installed" and profile.eid == device.eid
        stale = [n for n in await _notifications(server, iccid) if n.transaction_id == first.transaction_id]
        assert len(stale) == 1 and stale[0].success is False and not stale[0].applied
        assert "superseded" in (stale[0].disposition or "")

        again = await run_download(new_device(tmp_path, server.manifest, "other").euicc, code)
        assert codes(again) == ("8.2", "1.2")
        await _wait_for(lambda: (4, "Executed-Success") in endpoint.points())
        await asyncio.sleep(0.3)
        assert (4, "Failed") not in endpoint.points()  # the operator never hears "installation failed"


async def test_old_bpp_installed_after_a_reorder_does_not_settle_the_new_order(
    server: RunningServer, tmp_path: Path
) -> None:
    """Scenario 2: BPP delivered to phone A, the operator cancels and re-orders the ICCID for customer B, then A
    installs the old BPP and reports success.  The new order stays Released and B downloads it."""
    async with AsyncExitStack() as stack:
        es2 = await operator_client(server, "acme")
        stack.push_async_callback(es2.close)
        [iccid] = await stock_profiles(server, "acme", 1)
        await es2.call("downloadOrder", iccid=iccid)
        old = await es2.call("confirmOrder", iccid=iccid, releaseFlag=True)
        phone_a = new_device(tmp_path, server.manifest, "a")
        lossy = _holding_notifications(HookedClient())
        installed_on_a = await run_download(phone_a.euicc, f"LPA:1${server.address}${old['matchingId']}", lossy)
        await lossy.close()
        assert installed_on_a.ok and not installed_on_a.notification_delivered

        await es2.call("cancelOrder", iccid=iccid, finalProfileStatusIndicator="Available")
        await es2.call("downloadOrder", iccid=iccid)
        new = await es2.call("confirmOrder", iccid=iccid, releaseFlag=True)

        client = HookedClient()
        stack.push_async_callback(client.close)
        assert [d.delivered for d in await process_notifications(phone_a.euicc, client)] == [True]
        profile = await _profile(server, iccid)
        assert profile.state == "Released" and profile.eid is None
        [late] = await _notifications(server, iccid)
        assert late.success and not late.applied and late.eid == phone_a.eid

        phone_b = new_device(tmp_path, server.manifest, "b")
        result = await run_download(phone_b.euicc, f"LPA:1${server.address}${new['matchingId']}")
        assert result.ok, result.to_json()
        profile = await _profile(server, iccid)
        assert profile.state == "Installed" and profile.eid == phone_b.eid


async def test_success_result_for_a_session_without_a_bpp_changes_nothing(
    server: RunningServer, tmp_path: Path
) -> None:
    """Scenario 3: a session that only authenticated (no confirmation code given, no BPP) reports success.  The
    confirmation-code-protected order is not burned: it stays Released and downloads with the right code."""
    iccid = demo_iccid()
    imported = await import_profile(server.db, demo_package(iccid), confirmation_code="12345678")
    code = f"LPA:1${server.address}${imported.matching_id}$$1"
    device = new_device(tmp_path, server.manifest, "phone")

    halted = HookedClient()

    def stop(body: dict[str, Any]) -> dict[str, Any]:
        raise Es9Error(None, None, "user walked away", "getBoundProfilePackage")

    halted.request_hooks["getBoundProfilePackage"] = stop
    attempt = await run_download(device.euicc, code, halted, confirmation_code="00000000")
    await halted.close()
    assert not attempt.ok and (await _session(server, attempt.transaction_id)).step == "authenticated"

    forged = device.installation_result(
        attempt.transaction_id, iccid, server.address, server.runtime.credentials.smdp_oid, success=True
    )
    client = HookedClient()
    try:
        await client.handle_notification(server.address, pending_notification=forged)
        assert (await _profile(server, iccid)).state == "Released"
        [note] = await _notifications(server, iccid)
        assert note.success and not note.applied and "holds no outstanding BPP" in (note.disposition or "")
        assert (await _session(server, attempt.transaction_id)).step == "authenticated"
        result = await run_download(device.euicc, code, client, confirmation_code="12345678")
        assert result.ok, result.to_json()
        assert (await _profile(server, iccid)).state == "Installed"
    finally:
        await client.close()


async def test_management_notifications_count_only_from_the_euicc_holding_the_profile(
    server: RunningServer, tmp_path: Path
) -> None:
    """Scenario 4: another genuine eUICC reports enable/delete for an ICCID installed on phone A: recorded, not
    applied, not forwarded.  Phone A's own delete is applied and `profile list` says so; a re-signed
    duplicate is recorded once."""
    async with AsyncExitStack() as stack:
        endpoint, iccid, order = await _released_order_with_callbacks(stack, server)
        phone_a = new_device(tmp_path, server.manifest, "a")
        assert (await run_download(phone_a.euicc, f"LPA:1${server.address}${order['matchingId']}")).ok
        await _wait_for(lambda: len(endpoint.received) >= 3)

        stranger = new_device(tmp_path, server.manifest, "stranger")
        client = HookedClient()
        stack.push_async_callback(client.close)
        for event in ("enable", "delete"):
            body = stranger.management_notification(event, iccid, server.address)
            await client.handle_notification(server.address, pending_notification=body)
        profile = await _profile(server, iccid)
        assert profile.state == "Installed" and profile.euicc_state == "disabled"
        recorded = await _notifications(server, iccid)
        assert [(n.event, n.eid, n.applied) for n in recorded[1:]] == [
            ("enable", stranger.eid, False), ("delete", stranger.eid, False),
        ]

        delete = phone_a.management_notification("delete", iccid, server.address)
        phone_a.seq -= 1  # the same notification again
        resigned = phone_a.management_notification("delete", iccid, server.address)
        assert resigned != delete  # ECDSA signs anew: other bytes, the same signed notification
        for body in (delete, resigned):
            await client.handle_notification(server.address, pending_notification=body)
        profile = await _profile(server, iccid)
        assert profile.euicc_state == "deleted"
        assert [(n.event, n.eid, n.applied) for n in (await _notifications(server, iccid))[3:]] == [
            ("delete", phone_a.eid, True)
        ]
        [listed] = [p for p in await list_profiles(server.db) if p["iccid"] == iccid]
        assert listed["state"] == "Installed" and listed["euiccState"] == "deleted"
        await _wait_for(lambda: len(endpoint.received) >= 4)
        await asyncio.sleep(0.3)
        assert [(e["notificationPointId"], e["eid"]) for e in endpoint.received[3:]] == [(8, phone_a.eid)]


async def test_unauthenticated_requests_naming_a_victims_session_change_nothing(
    server: RunningServer, tmp_path: Path
) -> None:
    """Scenario 5: garbage (or a broken signature) sent with a victim's transactionId, before each of the victim's
    authenticateClient and getBoundProfilePackage, is refused and leaves the victim's session usable."""
    iccid = demo_iccid()
    imported = await import_profile(server.db, demo_package(iccid))
    victim = new_device(tmp_path, server.manifest, "victim")
    attacker = HookedClient()
    refusals: list[tuple[str | None, str | None]] = []

    def meddle(function: str, field: str) -> Any:
        async def hook(body: dict[str, Any]) -> dict[str, Any]:
            for junk in (b64encode(b"\x30\x00"), body[field][:-8] + "AAAAAAAA"):  # garbage; a broken signature
                try:
                    await attacker.call(server.address, function, {"transactionId": body["transactionId"], field: junk})
                except Es9Error as exc:
                    refusals.append((exc.subject_code, exc.reason_code))
            return body

        return hook

    client = HookedClient()
    client.request_hooks["authenticateClient"] = meddle("authenticateClient", "authenticateServerResponse")
    client.request_hooks["getBoundProfilePackage"] = meddle("getBoundProfilePackage", "prepareDownloadResponse")
    try:
        result = await run_download(victim.euicc, f"LPA:1${server.address}${imported.matching_id}", client)
    finally:
        await client.close()
        await attacker.close()
    assert result.ok, result.to_json()
    # garbage is 1.6/2.1; the damaged tail is the EUM certificate's signature, then euiccSignature2 (or, when the
    # base64 padding moves, DER that no longer parses: 1.6/2.1)
    assert refusals[0] == refusals[2] == ("1.6", "2.1")
    assert refusals[1] in (("8.1.2", "6.1"), ("1.6", "2.1")) and refusals[3] in (("8.1", "6.1"), ("1.6", "2.1"))
    assert (await _session(server, result.transaction_id)).step == "completed"
    assert (await _profile(server, iccid)).state == "Installed"


async def test_es2_refuses_an_order_step_that_names_another_eid(server: RunningServer, tmp_path: Path) -> None:
    """CancelOrder of an EID-bound order must name that EID (SGP.22 5.3.3)."""
    async with AsyncExitStack() as stack:
        es2 = await operator_client(server, "acme")
        stack.push_async_callback(es2.close)
        [iccid] = await stock_profiles(server, "acme", 1)
        device = new_device(tmp_path, server.manifest, "phone")
        await es2.call("downloadOrder", iccid=iccid, eid=device.eid)
        await es2.call("confirmOrder", iccid=iccid, matchingId="", releaseFlag=True)
        assert await es2_error(es2.call("cancelOrder", iccid=iccid, finalProfileStatusIndicator="Available")) == ("8.1.1", "2.2")
        other = new_device(tmp_path, server.manifest, "other")
        assert await es2_error(
            es2.call("cancelOrder", iccid=iccid, eid=other.eid, finalProfileStatusIndicator="Available")
        ) == ("8.1.1", "3.10")
        await es2.call("cancelOrder", iccid=iccid, eid=device.eid, finalProfileStatusIndicator="Available")
        assert (await _profile(server, iccid)).state == "Available"
