"""Real networks and idle connections: bodies split across writes or chunked, stalled bodies, slowloris
headers, stalled TLS handshakes, idle keep-alive connections, a connection storm against the cap, and the
operator interfaces (ES2+, /admin) on their own listener.

The clients are raw TLS sockets (asyncio streams over the ssl module) on loopback, writing HTTP/1.1 by
hand, against an in-process server with short, test-configured limits (smdp.web.limits.Limits).  Run with
``-s`` to see the figures the storm test measures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import ssl
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from smdp.codec.b64 import b64encode
from smdp.operator_client import Es2Client
from smdp.services.operators import add_operator
from smdp.store.tables import DownloadSession
from smdp.web.app import ES2_PREFIX, ES9_PREFIX
from smdp.web.limits import Limits
from tests.conftest import RunningServer
from tests.es2_tools import stock_profiles
from tests.es9_tools import open_euicc, run_download

INITIATE = ES9_PREFIX + "initiateAuthentication"


def client_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's DPtls certificate is not what these tests are about
    return context


CLIENT_TLS = client_tls()


@asynccontextmanager
async def limited_server(tmp_path: Path, manifest: Path, limits: Limits, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    """An in-process server on ephemeral loopback ports with ``limits``; yields (Listeners, Runtime)."""
    from smdp.config import load_settings
    from smdp.server import open_runtime, serving

    settings = load_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'smdp.db'}", manifest)
    runtime = await open_runtime(settings, frozenset())
    try:
        async with serving(runtime, "127.0.0.1", 0, limits=limits, **kwargs) as listeners:
            yield listeners, runtime
    finally:
        await runtime.db.dispose()


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


async def tls_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=CLIENT_TLS)


def initiate_body(tmp_path: Path, manifest: Path, address: str) -> bytes:
    """A valid ES9+ initiateAuthentication body, as the LPA (smdp/lpa/download.py) builds it."""
    euicc = open_euicc(tmp_path, manifest)
    body = {"euiccChallenge": b64encode(os.urandom(16)), "euiccInfo1": b64encode(euicc.euicc_info1()), "smdpAddress": address}
    return json.dumps(body).encode()


def request_head(path: str, address: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
        f"X-Admin-Protocol: gsma/rsp/v2.2.0\r\nUser-Agent: smdp-test\r\n{extra}\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(timeout):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
        else:
            body = b""
    return status, headers, body


def status_of(body: bytes) -> tuple[str, str | None, str | None]:
    execution = json.loads(body)["header"]["functionExecutionStatus"]
    data = execution.get("statusCodeData", {})
    return execution["status"], data.get("subjectCode"), data.get("reasonCode")


def split(data: bytes, pieces: int) -> list[bytes]:
    """``data`` cut into ``pieces`` parts (the cuts fall inside the headers and inside the body)."""
    cuts = [len(data) * i // pieces for i in range(pieces + 1)]
    return [data[a:b] for a, b in pairwise(cuts)]


async def send_slowly(writer: asyncio.StreamWriter, parts: list[bytes], pause: float = 0.05) -> None:
    for part in parts:
        writer.write(part)  # one TLS record per part, and one TCP segment (NODELAY-free loopback: the pause)
        await writer.drain()
        await asyncio.sleep(pause)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(5):
            await writer.wait_closed()
    except (OSError, ssl.SSLError, TimeoutError):
        pass


async def session_rows(runtime: Any) -> int:
    async with runtime.db.transaction() as session:
        return len((await session.exec(select(DownloadSession.transaction_id))).all())


async def closed_by_server(reader: asyncio.StreamReader, bound: float) -> float:
    """Seconds until the server closes the connection (EOF, reset); fails after ``bound`` seconds."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(bound):
            while await reader.read(65536):
                pass
    except (ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - start


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


# --- 1. request bodies across writes, chunked, and stalled ------------------------------------------------


async def test_bodies_split_across_writes_and_chunked_succeed(tmp_path: Path, pki_manifest: Path) -> None:
    async with limited_server(tmp_path, pki_manifest, Limits(body_timeout=3, header_timeout=3)) as (listeners, runtime):
        port = port_of(listeners.device)
        body = initiate_body(tmp_path, pki_manifest, listeners.device)
        request = request_head(INITIATE, listeners.device, f"Content-Length: {len(body)}\r\n") + body
        for pieces in (2, 3, 4, 5):
            reader, writer = await tls_open(port)
            await send_slowly(writer, split(request, pieces))
            status, _headers, answer = await read_response(reader)
            assert status == 200 and status_of(answer)[0] == "Executed-Success", (pieces, answer)
            await close(writer)

        # chunked: three chunks, each in its own write, then the last chunk
        reader, writer = await tls_open(port)
        parts = [request_head(INITIATE, listeners.device, "Transfer-Encoding: chunked\r\n")]
        parts += [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in split(body, 3)] + [b"0\r\n\r\n"]
        await send_slowly(writer, parts)
        status, _headers, answer = await read_response(reader)
        assert status == 200 and status_of(answer)[0] == "Executed-Success", answer

        # keep-alive: a second request on the same connection, its body in two writes
        await send_slowly(writer, split(request, 2))
        status, _headers, answer = await read_response(reader)
        assert status == 200 and status_of(answer)[0] == "Executed-Success", answer
        await close(writer)
        assert await session_rows(runtime) == 6


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_short_of_its_length_fails_after_the_body_timeout(tmp_path: Path, pki_manifest: Path, framing: str) -> None:
    body_timeout = 1.0
    async with limited_server(tmp_path, pki_manifest, Limits(body_timeout=body_timeout)) as (listeners, runtime):
        body = initiate_body(tmp_path, pki_manifest, listeners.device)
        reader, writer = await tls_open(port_of(listeners.device))
        if framing == "content-length":
            parts = [request_head(INITIATE, listeners.device, f"Content-Length: {len(body)}\r\n"), body[:-10]]
        else:  # every byte of the JSON, but never the last chunk
            parts = [request_head(INITIATE, listeners.device, "Transfer-Encoding: chunked\r\n"), b"%x\r\n%s\r\n" % (len(body), body)]
        start = time.monotonic()
        await send_slowly(writer, parts)
        status, _headers, answer = await read_response(reader, timeout=body_timeout + 10)
        elapsed = time.monotonic() - start
        assert status == 200
        assert status_of(answer) == ("Failed", "1.6", "2.1"), answer
        assert "incomplete" in json.loads(answer)["header"]["functionExecutionStatus"]["statusCodeData"]["message"]
        assert body_timeout * 0.9 <= elapsed <= body_timeout + 5, elapsed
        await close(writer)
        assert await session_rows(runtime) == 0  # the request was not processed


async def test_a_malformed_chunked_body_or_a_hang_up_mid_body_is_not_processed(tmp_path: Path, pki_manifest: Path) -> None:
    """Bad chunk framing answers 1.6/2.1 (at the latest when the body timeout expires: aiohttp's parser waits
    for more); a client hanging up mid-body leaves no session and is no server fault (the catch-all's
    1.2/4.2 would fail this test, see conftest.py)."""
    async with limited_server(tmp_path, pki_manifest, Limits(body_timeout=1)) as (listeners, runtime):
        body = initiate_body(tmp_path, pki_manifest, listeners.device)
        reader, writer = await tls_open(port_of(listeners.device))
        await send_slowly(writer, [request_head(INITIATE, listeners.device, "Transfer-Encoding: chunked\r\n"), b"zz\r\n" + body])
        status, _headers, answer = await read_response(reader)
        assert status == 200 and status_of(answer) == ("Failed", "1.6", "2.1"), answer
        writer.transport.abort()

        reader, writer = await tls_open(port_of(listeners.device))
        await send_slowly(writer, [request_head(INITIATE, listeners.device, f"Content-Length: {len(body)}\r\n"), body[:20]])
        writer.transport.abort()
        await asyncio.sleep(0.5)
        assert await session_rows(runtime) == 0


# --- 2. timeouts and the connection cap ---------------------------------------------------------------


async def test_slow_headers_are_closed_after_the_header_timeout(tmp_path: Path, pki_manifest: Path) -> None:
    header_timeout, count = 1.0, 200
    limits = Limits(header_timeout=header_timeout, keepalive_timeout=60, max_connections=1000)
    async with limited_server(tmp_path, pki_manifest, limits) as (listeners, _runtime):
        site = listeners.sites["device"]
        gate = asyncio.Semaphore(50)

        async def slowloris(index: int) -> float:
            """Seconds from the first byte of a partial head to the server closing the connection.  A third
            stall on their first request, a third after a complete request (keep-alive), a third drip a
            byte every 200 ms (activity must not extend the header timeout)."""
            async with gate:
                reader, writer = await tls_open(port_of(listeners.device))
                if index % 3 == 1:
                    writer.write(f"GET /openapi.json HTTP/1.1\r\nHost: {listeners.device}\r\n\r\n".encode())
                    await writer.drain()
                    assert (await read_response(reader))[0] == 200
            start = time.monotonic()
            writer.write(b"POST / HTTP/1.1\r\nHost")
            await writer.drain()
            try:
                if index % 3 == 2:
                    for _ in range(int(header_timeout * 10)):
                        await asyncio.sleep(0.2)
                        writer.write(b"x")
                        await writer.drain()
                        if reader.at_eof():
                            break
                await closed_by_server(reader, header_timeout + 15)
                return time.monotonic() - start
            except (ConnectionError, ssl.SSLError):  # a drip write after the server closed
                return time.monotonic() - start
            finally:
                await close(writer)

        start = time.monotonic()
        waits = await asyncio.gather(*(slowloris(i) for i in range(count)))
        total = time.monotonic() - start
        kinds = {kind: [w for i, w in enumerate(waits) if i % 3 == n] for n, kind in enumerate(("first", "after a request", "drip"))}
        figures = ", ".join(f"{kind} {min(w):.2f}..{max(w):.2f} s" for kind, w in kinds.items())
        print(f"\nslow headers: {count} connections closed after their partial head: {figures} "
              f"(header timeout {header_timeout:g} s, keep-alive 60 s); all done in {total:.1f} s")
        assert max(waits) <= header_timeout + 5  # the header timeout closed them, not the keep-alive one
        assert min(kinds["after a request"]) >= header_timeout * 0.9  # timed from that request's first byte
        assert min(waits) >= header_timeout * 0.5
        for _ in range(100):
            if site.connections == 0:
                break
            await asyncio.sleep(0.05)
        assert site.connections == 0


async def test_stalled_tls_handshakes_are_closed(tmp_path: Path, pki_manifest: Path) -> None:
    limits = Limits(tls_handshake_timeout=1.0, header_timeout=30, keepalive_timeout=30)
    async with limited_server(tmp_path, pki_manifest, limits) as (listeners, _runtime):
        port = port_of(listeners.device)
        plain = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]  # TCP, never a ClientHello
        waits = await asyncio.gather(*(closed_by_server(reader, 15) for reader, _ in plain))
        for _, writer in plain:
            writer.close()
        print(f"\nstalled TLS handshakes: 20 closed after {min(waits):.2f}..{max(waits):.2f} s (timeout 1 s)")
        assert min(waits) >= 0.5 and max(waits) <= 6


STORM_CLIENT = r"""
import asyncio, json, ssl, sys, time

port, count, extra, timeout = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE


def say(**fields):
    print(json.dumps(fields), flush=True)


async def closed(reader, bound):
    try:
        async with asyncio.timeout(bound):
            while await reader.read(65536):
                pass
    except (ConnectionError, ssl.SSLError):
        pass


async def main():
    gate = asyncio.Semaphore(100)
    opened, all_open = [], asyncio.Event()

    async def idle(index):
        # every other connection sends a request first (then the keep-alive timeout applies), the others
        # send nothing (the header timeout); then idle until the server closes the connection
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
            if index % 2 == 0:
                writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
                await reader.readexactly(int(length.split(b":")[1]))
        last = time.monotonic()
        opened.append(index)
        if len(opened) == count:
            all_open.set()
        await closed(reader, timeout + 40)
        seconds = time.monotonic() - last
        writer.close()
        return seconds

    async def refused():
        try:
            async with asyncio.timeout(5):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
        except (ConnectionError, ssl.SSLError, OSError):
            return True
        except TimeoutError:
            return False
        writer.close()
        return False

    start = time.monotonic()
    tasks = [asyncio.create_task(idle(i)) for i in range(count)]
    async with asyncio.timeout(40):
        await all_open.wait()
    open_time = time.monotonic() - start
    say(event="opened", seconds=open_time)
    refusals = await asyncio.gather(*(refused() for _ in range(extra)))
    say(event="extra", refused=sum(refusals), tried=extra)
    closes = await asyncio.gather(*tasks)
    say(event="closed", first=min(closes), last=max(closes), all_closed=time.monotonic() - start - open_time)


asyncio.run(main())
"""


async def test_a_connection_storm_is_capped_and_idle_connections_are_closed(tmp_path: Path, pki_manifest: Path) -> None:
    """≥1,000 idle TLS connections: the server holds at most max_connections, refuses the rest at once, closes
    the idle ones after the keep-alive (after a request) or header (before any) timeout, and its memory
    comes back.  The clients run in a child process, so that VmRSS here is the server's.  The figures are
    printed (pytest -s)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    count, extra, timeout = 1000, 50, 8.0
    limits = Limits(header_timeout=timeout, keepalive_timeout=timeout, max_connections=count, backlog=1024)
    test_start = time.monotonic()
    async with limited_server(tmp_path, pki_manifest, limits) as (listeners, _runtime):
        site = listeners.sites["device"]
        gc.collect()
        baseline = rss_kb()
        peak = baseline
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_kb())
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", STORM_CLIENT, str(port_of(listeners.device)), str(count), str(extra), str(timeout),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        events: dict[str, dict[str, Any]] = {}
        held = 0
        try:
            async with asyncio.timeout(90):
                assert child.stdout is not None
                while line := await child.stdout.readline():
                    event = json.loads(line)
                    events[event["event"]] = event
                    if event["event"] == "opened":
                        held = site.connections
                await child.wait()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert child.returncode == 0, (await child.stderr.read()).decode() if child.stderr else ""
        for _ in range(200):
            if site.connections == 0:
                break
            await asyncio.sleep(0.05)
        sampling = False
        await sampler
        # the server still serves after the storm
        reader, writer = await tls_open(port_of(listeners.device))
        writer.write(f"GET /openapi.json HTTP/1.1\r\nHost: {listeners.device}\r\n\r\n".encode())
        await writer.drain()
        assert (await read_response(reader))[0] == 200
        await close(writer)
        gc.collect()
        after = rss_kb()
        opened, extras, closed = events["opened"], events["extra"], events["closed"]
        print(
            f"\nconnection storm: {count} TLS connections opened in {opened['seconds']:.1f} s (server held {held}, "
            f"peak {site.peak}); {extras['refused']}/{extras['tried']} beyond max_connections={count} refused "
            f"(server counted {site.refused}); idle connections closed {closed['first']:.2f}..{closed['last']:.2f} s "
            f"after their last activity (timeout {timeout:g} s), all closed {closed['all_closed']:.1f} s after the "
            f"last opened; server RSS before {baseline / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
            f"after {after / 1024:.1f} MiB; test {time.monotonic() - test_start:.1f} s"
        )
        assert held == count and site.peak == count
        assert extras["refused"] == extra and site.refused >= extra
        assert timeout * 0.9 <= closed["first"] and closed["last"] <= timeout + 10
        assert site.connections == 0
        assert after <= 2 * baseline


# --- 3. the operator interfaces on their own listener --------------------------------------------------


async def test_es2_and_admin_only_on_the_operator_listener(tmp_path: Path, pki_manifest: Path) -> None:
    async with limited_server(tmp_path, pki_manifest, Limits(), operator_port=0) as (listeners, runtime):
        assert listeners.operator is not None and listeners.operator != listeners.device
        server = RunningServer(listeners.device, runtime, tmp_path / "data", pki_manifest, runtime.credentials.tls_ca_cert_path)
        token = await add_operator(runtime.db, "acme")
        (iccid,) = await stock_profiles(server, "acme", 1)
        es2_headers = {"Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v2.2.0", "Authorization": f"Bearer {token}"}
        order = json.dumps({"header": {"functionRequesterIdentifier": "acme", "functionCallIdentifier": "1"}, "iccid": iccid})
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            device, operator = f"https://{listeners.device}", f"https://{listeners.operator}"
            for function in ("downloadOrder", "confirmOrder", "cancelOrder", "releaseProfile"):
                async with http.post(device + ES2_PREFIX + function, data=order, headers=es2_headers) as response:
                    assert response.status == 404, function
            async with http.get(device + "/admin/profiles", headers=es2_headers) as response:
                assert response.status == 404
            async with http.post(operator + INITIATE, data=b"{}", headers=es2_headers) as response:
                assert response.status == 404  # and ES9+ is not on the operator listener
            async with http.get(operator + "/admin/profiles", headers=es2_headers) as response:
                assert response.status == 200 and [p["iccid"] for p in (await response.json())["profiles"]] == [iccid]
            for base in (device, operator):
                async with http.get(base + "/openapi.json") as response:
                    assert response.status == 200
        # an order on the operator listener, downloaded over the device listener
        async with Es2Client(operator, token, "acme", insecure=True) as es2:
            await es2.call("downloadOrder", iccid=iccid)
            confirmed = await es2.call("confirmOrder", iccid=iccid, matchingId="MID-OPERATOR-PORT", releaseFlag=True)
        assert confirmed["smdpAddress"] == listeners.device
        result = await run_download(open_euicc(tmp_path, pki_manifest), f"LPA:1${listeners.device}$MID-OPERATOR-PORT")
        assert result.subject_code is None, result


def test_serve_flags_default_to_the_limits_defaults() -> None:
    from smdp.cli import build_parser, limits_of

    args = build_parser().parse_args(["serve"])
    assert limits_of(args) == Limits()
    assert args.operator_port is None and args.operator_host is None
    args = build_parser().parse_args(["serve", "--keepalive-timeout", "5", "--max-connections", "64", "--operator-port", "9443"])
    assert (limits_of(args).keepalive_timeout, limits_of(args).max_connections, args.operator_port) == (5.0, 64, 9443)
