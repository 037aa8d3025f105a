"""ES2+ (SGP.22 5.3): orders, lifecycle, confirmation codes, callbacks, operator isolation, malformed requests."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from smdp.cli.order import place_order
from smdp.store.tables import OutboxEvent, Profile
from tests.conftest import RunningServer, start_server
from tests.es2_tools import CallbackEndpoint, es2_error, operator_client, start_endpoint, stock_profiles
from tests.es9_tools import codes, open_euicc, run_download


async def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def _state(server: RunningServer, iccid: str) -> str:
    async with server.db.transaction() as db:
        return (await db.exec(select(Profile.state).where(Profile.iccid == iccid))).one()


async def test_operator_flow_order_download_callbacks(tmp_path: Path, pki_manifest: Path, database_url: str) -> None:
    """downloadOrder → confirmOrder → download with the activation code → callbacks in order → no second download."""
    async with AsyncExitStack() as stack:
        endpoint = await start_endpoint(stack, CallbackEndpoint())
        server, server_stack = await start_server(tmp_path / "data", pki_manifest, database_url)
        stack.push_async_callback(server.db.dispose)
        stack.push_async_callback(server_stack.aclose)
        client = await operator_client(server, "acme", endpoint.url)
        stack.push_async_callback(client.close)
        iccid, with_cc = await stock_profiles(server, "acme", 2, "travel")

        order = await place_order(client, profile_type="travel")
        assert order.iccid == iccid and order.activation_code.startswith(f"LPA:1${server.address}$")
        assert await _state(server, iccid) == "Released"
        euicc = open_euicc(tmp_path, pki_manifest)
        result = await run_download(euicc, order.activation_code)
        assert result.ok, result.to_json()
        assert await _state(server, iccid) == "Installed"
        await _wait_for(lambda: len(endpoint.received) >= 3)
        assert endpoint.points() == [(1, "Executed-Success"), (3, "Executed-Success"), (4, "Executed-Success")]
        assert {e["iccid"] for e in endpoint.received} == {iccid} and endpoint.received[0]["eid"] == euicc.eid
        assert endpoint.received[2]["resultData"]  # the ProfileInstallationResult, base64

        again = await run_download(open_euicc(tmp_path, pki_manifest, name="again"), order.activation_code)
        assert codes(again) == ("8.2", "1.2")

        coded = await place_order(client, profile_type="travel", confirmation_code="4711")
        assert coded.iccid == with_cc and coded.activation_code.endswith("$$1")
        wrong = await run_download(euicc, coded.activation_code, confirmation_code="0000")
        assert codes(wrong) == ("8.2.7", "3.8")
        right = await run_download(euicc, coded.activation_code, confirmation_code="4711")
        assert right.ok, right.to_json()
        await _wait_for(lambda: len(endpoint.received) >= 9)
        assert endpoint.points()[3:] == [
            (1, "Failed"),  # the refused second download
            (1, "Executed-Success"), (2, "Failed"), (1, "Executed-Success"), (3, "Executed-Success"), (4, "Executed-Success"),
        ]
        assert len({e["header"]["functionCallIdentifier"] for e in endpoint.received}) == len(endpoint.received)


@pytest.fixture
async def es2(server: RunningServer):  # type: ignore[no-untyped-def]
    client = await operator_client(server, "acme")
    yield client
    await client.close()


async def test_es2_error_codes(server: RunningServer, es2, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, second, third = await stock_profiles(server, "acme", 3)
    euicc = open_euicc(tmp_path, server.manifest)
    other_eid = open_euicc(tmp_path, server.manifest, "brainpool").eid  # same EID in the test PKI
    assert await es2_error(es2.call("downloadOrder", iccid="89999999999999999990")) == ("8.2.1", "3.9")
    await es2.call("downloadOrder", iccid=first)
    assert await es2_error(es2.call("downloadOrder", iccid=first)) == ("8.2.1", "3.3")
    assert await es2_error(es2.call("downloadOrder", profileType="nope")) == ("8.2.5", "3.9")
    assert await es2_error(es2.call("downloadOrder")) == ("1.6", "2.3")
    # SGP.22 5.3.2: an empty matchingId is the default SM-DP+ use case, which needs the EID
    assert await es2_error(es2.call("confirmOrder", iccid=first, matchingId="", releaseFlag=True)) == ("8.1.1", "2.2")
    bad_smds = es2.call("confirmOrder", iccid=first, matchingId="", smdsAddress="not a host", releaseFlag=True)
    assert await es2_error(bad_smds) == ("8.9", "5.1")
    await es2.call("confirmOrder", iccid=first, matchingId="MID-1", releaseFlag=True)
    await es2.call("downloadOrder", iccid=second, eid=euicc.eid)
    assert await es2_error(es2.call("confirmOrder", iccid=second, matchingId="MID-1", releaseFlag=True)) == ("8.2.6", "3.3")
    wrong_eid = "89049032" + "0" * 22
    from smdp.pki.eid import eid_check_digits, random_eid

    assert await es2_error(es2.call("confirmOrder", iccid=second, eid=random_eid("89049032"), releaseFlag=True)) == ("8.1.1", "3.10")
    assert await es2_error(es2.call("confirmOrder", iccid=second, eid=wrong_eid + "00", releaseFlag=True)) == ("8.1.1", "2.1")
    assert eid_check_digits(wrong_eid) != "00" or True
    unknown_mid = es2.call("cancelOrder", iccid=first, matchingId="MID-2", finalProfileStatusIndicator="Available")
    assert await es2_error(unknown_mid) == ("8.2.6", "3.10")
    assert await es2_error(es2.call("releaseProfile", iccid=third)) == ("8.2.1", "3.5")
    assert await es2_error(es2.call("cancelOrder", iccid=first, finalProfileStatusIndicator="Gone")) == ("1.6", "2.1")
    # the default SM-DP+ flow: EID bound, no matching ID
    confirmed = await es2.call("confirmOrder", iccid=second, matchingId="", releaseFlag=False)
    assert "matchingId" not in confirmed and confirmed["eid"] == euicc.eid == other_eid
    assert confirmed["smdpAddress"] == server.address
    not_released = await run_download(euicc, f"LPA:1${server.address}$")
    assert codes(not_released) == ("8.1.1", "3.8")  # a Confirmed order is not offered yet: no pending order
    await es2.call("releaseProfile", iccid=second)
    assert (await run_download(euicc, f"LPA:1${server.address}$")).ok
    assert await _state(server, second) == "Installed"
    # an order made for an EID is cancelled by naming it; an Installed profile can't be cancelled
    assert await es2_error(es2.call("cancelOrder", iccid=second, finalProfileStatusIndicator="Available")) == ("8.1.1", "2.2")
    installed = es2.call("cancelOrder", iccid=second, eid=euicc.eid, finalProfileStatusIndicator="Available")
    assert await es2_error(installed) == ("8.2.1", "3.5")
    await es2.call("cancelOrder", iccid=first, matchingId="MID-1", finalProfileStatusIndicator="Unavailable")
    assert await _state(server, first) == "Unavailable"


async def test_download_refusals_from_the_lifecycle(server: RunningServer, es2, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    confirmed, expired, exhausted, ppr = await stock_profiles(server, "acme", 4)
    euicc = open_euicc(tmp_path, server.manifest)
    for iccid, mid in [(confirmed, "C-1"), (expired, "E-1"), (exhausted, "X-1"), (ppr, "P-1")]:
        await es2.call("downloadOrder", iccid=iccid)
        await es2.call("confirmOrder", iccid=iccid, matchingId=mid, releaseFlag=iccid != confirmed)
    async with server.db.transaction() as db:
        for iccid, change in [
            (expired, {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}),
            (exhausted, {"max_download_attempts": 1, "download_attempts": 1}),
            (ppr, {"profile_metadata": {"serviceProviderName": "x", "profileName": "y", "profilePolicyRules": ["ppr1"]}}),
        ]:
            profile = (await db.exec(select(Profile).where(Profile.iccid == iccid))).one()
            for key, value in change.items():
                setattr(profile, key, value)
            db.add(profile)
    address = server.address
    assert codes(await run_download(euicc, f"LPA:1${address}$C-1")) == ("8.2", "1.2")
    assert codes(await run_download(euicc, f"LPA:1${address}$E-1")) == ("8.8.5", "4.10")
    assert codes(await run_download(euicc, f"LPA:1${address}$X-1")) == ("8.8.5", "6.4")
    strict = open_euicc(tmp_path, server.manifest, name="strict")
    from smdp.euicc import VirtualEuicc

    strict = VirtualEuicc.open(strict.state_path, forbidden_pprs=["ppr1"])
    assert codes(await run_download(strict, f"LPA:1${address}$P-1")) == ("8.2.5", "4.3")


async def test_operators_see_only_their_own_profiles(server: RunningServer, es2) -> None:  # type: ignore[no-untyped-def]
    (mine,) = await stock_profiles(server, "acme", 1, "shared-name")
    other = await operator_client(server, "globex")
    try:
        (theirs,) = await stock_profiles(server, "globex", 1, "shared-name")
        assert await es2_error(other.call("downloadOrder", iccid=mine)) == ("8.2.1", "3.9")
        assert await es2_error(other.call("cancelOrder", iccid=mine, finalProfileStatusIndicator="Available")) == ("8.2.1", "3.9")
        assert (await other.call("downloadOrder", profileType="shared-name"))["iccid"] == theirs
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            async with http.get(f"https://{server.address}/admin/profiles", headers={"Authorization": f"Bearer {other.token}"}) as response:
                listed = [p["iccid"] for p in (await response.json())["profiles"]]
            async with http.get(f"https://{server.address}/admin/profiles") as response:
                assert response.status == 401
        assert listed == [theirs]
        assert await _state(server, mine) == "Available"
    finally:
        await other.close()


async def test_es2_callers_must_authenticate(server: RunningServer, es2) -> None:  # type: ignore[no-untyped-def]
    from smdp.operator_client import Es2Client

    async with Es2Client(f"https://{server.address}", "not-a-token", "acme", insecure=True) as stranger:
        assert await es2_error(stranger.call("downloadOrder", profileType="x")) == ("1.1", "1.1")
    async with Es2Client(f"https://{server.address}", es2.token, "someone-else", insecure=True) as impostor:
        assert await es2_error(impostor.call("downloadOrder", profileType="x")) == ("1.1", "1.2")


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"header": 1}', b'{"header": {"functionRequesterIdentifier": "acme"}}',
     b'{"header": {"functionRequesterIdentifier": "acme", "functionCallIdentifier": "1"}, "iccid": 5}',
     b'{"header": {"functionRequesterIdentifier": "acme", "functionCallIdentifier": "1"}, "iccid": "12ab"}',
     b'{"header": {"functionRequesterIdentifier": "acme", "functionCallIdentifier": "1"}, '
     b'"iccid": "89999999999999999990", "releaseFlag": "yes"}'],
)
@pytest.mark.parametrize("function", ["downloadOrder", "confirmOrder", "cancelOrder", "releaseProfile"])
async def test_malformed_es2_requests_get_sgp22_errors_and_change_nothing(server: RunningServer, es2, function: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    (iccid,) = await stock_profiles(server, "acme", 1)
    headers = {"Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v2.2.0", "Authorization": f"Bearer {es2.token}"}
    url = f"https://{server.address}/gsma/rsp2/es2plus/{function}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http,
        http.post(url, data=body, headers=headers) as response,
    ):
        assert response.status == 200
        answer = json.loads(await response.read())
    assert answer["header"]["functionExecutionStatus"]["status"] == "Failed"
    assert set(answer["header"]["functionExecutionStatus"]["statusCodeData"]) >= {"subjectCode", "reasonCode"}
    assert await _state(server, iccid) == "Available"


async def test_callbacks_survive_a_failing_endpoint_and_a_restart(tmp_path: Path, pki_manifest: Path) -> None:
    """Every event arrives, in order, each once, though the operator refuses the first calls and the server restarts."""
    url = f"sqlite:///{tmp_path / 'smdp.db'}"
    async with AsyncExitStack() as stack:
        endpoint = await start_endpoint(stack, CallbackEndpoint(fail=10**6))  # down for now
        server, server_stack = await start_server(tmp_path / "data", pki_manifest, url)
        client = await operator_client(server, "acme", endpoint.url)
        stack.push_async_callback(client.close)
        await stock_profiles(server, "acme", 1)
        order = await place_order(client, profile_type="demo")
        assert (await run_download(open_euicc(tmp_path, pki_manifest), order.activation_code)).ok
        await _wait_for(lambda: endpoint.refused >= 1)
        await server_stack.aclose()  # the server stops with every event undelivered
        await server.db.dispose()
        endpoint.fail = 0
        restarted, restarted_stack = await start_server(tmp_path / "data", pki_manifest, url)
        stack.push_async_callback(restarted.db.dispose)
        stack.push_async_callback(restarted_stack.aclose)
        async with restarted.db.transaction() as db:  # retry now instead of after the backoff
            for event in (await db.exec(select(OutboxEvent))).all():
                event.next_attempt_at = datetime.now(UTC)
                db.add(event)
        await _wait_for(lambda: len(endpoint.received) >= 3)
        await asyncio.sleep(0.5)
        assert endpoint.points() == [(1, "Executed-Success"), (3, "Executed-Success"), (4, "Executed-Success")]
        async with restarted.db.transaction() as db:
            events = (await db.exec(select(OutboxEvent).order_by(OutboxEvent.id))).all()
        assert all(e.delivered_at is not None for e in events) and events[0].attempts >= 2


async def test_profile_type_lifecycle_settings_reach_orders_and_downloads(server: RunningServer, es2, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A profile type's order validity, attempt limit and reusability apply to the profiles made from it."""
    import os

    from smdp.profiles.demo import build_demo_profile
    from smdp.profiles.generate import IdentityRange
    from smdp.services.profile_types import create_profile_type, generate_profiles
    from tests.es2_tools import operator_id

    template = build_demo_profile("8999000000000000001", "001010000000001", os.urandom(16), os.urandom(16))
    await create_profile_type(
        server.db, "bench", template, algorithm="template", reusable=True, max_download_attempts=3, order_validity_days=2
    )
    await generate_profiles(server.db, "bench", IdentityRange("899911000000000000", "001010000000500", 1),
                            key_file=tmp_path / "keys.csv", operator_id=await operator_id(server, "acme"))
    order = await place_order(es2, profile_type="bench")
    async with server.db.transaction() as db:
        profile = (await db.exec(select(Profile).where(Profile.iccid == order.iccid))).one()
    assert profile.reusable and profile.max_download_attempts == 3
    expires = profile.expires_at if profile.expires_at.tzinfo else profile.expires_at.replace(tzinfo=UTC)
    assert timedelta(days=1, hours=23) < expires - datetime.now(UTC) <= timedelta(days=2)
    results = [await run_download(open_euicc(tmp_path, server.manifest, name=f"bench{n}"), order.activation_code) for n in range(4)]
    assert [r.ok for r in results] == [True, True, True, False] and codes(results[3]) == ("8.8.5", "6.4")


async def _raw_request(address: str, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as it is (bytes no HTTP client would send) over TLS; the status and body of the answer."""
    import ssl

    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # loopback test server
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=context), 10)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # Connection: close
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("token", [b"\xff\xfe\x80", "caf\u00e9".encode(), b"smdp_\xc3", b"two words"])
async def test_malformed_bearer_tokens_are_refused_not_a_server_error(server: RunningServer, es2, token: bytes) -> None:  # type: ignore[no-untyped-def]
    """Non-UTF-8, non-ASCII or otherwise malformed tokens: 401 from the admin API, 1.1/1.1 from ES2+ (never 500)."""
    status, _ = await _raw_request(
        server.address,
        b"GET /admin/profiles HTTP/1.1\r\nHost: smdp\r\nAuthorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n",
    )
    assert status == 401
    body = b'{"header": {"functionRequesterIdentifier": "acme", "functionCallIdentifier": "1"}, "profileType": "x"}'
    status, answer = await _raw_request(
        server.address,
        b"POST /gsma/rsp2/es2plus/downloadOrder HTTP/1.1\r\nHost: smdp\r\nContent-Type: application/json\r\n"
        b"X-Admin-Protocol: gsma/rsp/v2.2.0\r\nAuthorization: Bearer " + token + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body,
    )
    assert status == 200
    codes_ = json.loads(answer)["header"]["functionExecutionStatus"]["statusCodeData"]
    assert (codes_["subjectCode"], codes_["reasonCode"]) == ("1.1", "1.1")
    # the operator's own token still works, given the same way
    status, answer = await _raw_request(
        server.address,
        b"GET /admin/profiles HTTP/1.1\r\nHost: smdp\r\nAuthorization: Bearer " + es2.token.encode() + b"\r\nConnection: close\r\n\r\n",
    )
    assert status == 200 and json.loads(answer) == {"profiles": []}
