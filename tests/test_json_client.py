"""The client side of the SGP.22 JSON binding (smdp.web.client) against a local aiohttp server: what it sends,
how it reads each kind of answer, and how every failure becomes one JsonCallError with the right codes and
the right ``unreachable`` (the CLI's exit status 3 vs 1); and that Es9Client/Es2Client keep their errors."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from smdp.lpa.es9client import Es9Client, Es9Error
from smdp.operator_client import Es2Client, Es2Error
from smdp.pki.store import load_certificate, load_server_credentials
from smdp.pki.tls import server_ssl_context
from smdp.web.client import ADMIN_PROTOCOL, TRANSPORT_FAILED, JsonCallError, JsonClient, system_ssl_context

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def failed(subject: str, reason: str, message: str) -> dict[str, Any]:
    return {"header": {"functionExecutionStatus": {
        "status": "Failed", "statusCodeData": {"subjectCode": subject, "reasonCode": reason, "message": message}}}}


def executed(status: str = "Executed-Success", **fields: Any) -> dict[str, Any]:
    return {"header": {"functionExecutionStatus": {"status": status}}, **fields}


@dataclass
class Peer:
    """A server whose answer to ``POST /{name}`` is ``answers[name]``; it records what it was sent."""

    answers: dict[str, Handler] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append((name, dict(request.headers), await request.read()))
        return await self.answers[name](request)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


def answer(status: int = 200, body: bytes | dict[str, Any] | list[Any] = b"", content_type: str = "application/json",
           headers: dict[str, str] | None = None) -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        return web.Response(status=status, body=data or None, content_type=content_type, headers=headers)

    return handler


async def _start(peer: Peer, context: Any = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/{name}", peer.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    peer.base = f"{'https' if context else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    return runner


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    served = Peer()
    runner = await _start(served)
    yield served
    await runner.cleanup()


@pytest.fixture
async def tls_peer(pki_manifest: Path) -> AsyncIterator[tuple[Peer, Path]]:
    """A server with the test PKI's CERT.DP.TLS (for 127.0.0.1), and its CA certificate's file."""
    credentials = load_server_credentials(pki_manifest)
    assert credentials.tls_ca_cert_path is not None
    served = Peer(answers={"fn": answer(body=executed(ok="yes"))})
    runner = await _start(served, server_ssl_context(credentials))
    yield served, credentials.tls_ca_cert_path
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[JsonClient]:
    async with JsonClient(timeout=5) as json_client:
        yield json_client


async def failure(call: Awaitable[Any], kind: type[JsonCallError] = JsonCallError) -> JsonCallError:
    with pytest.raises(kind) as caught:
        await call
    return caught.value


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- what is sent, and answers that succeed ----------------------------------------------------------------


async def test_a_call_posts_compact_json_with_the_binding_headers_and_returns_the_answer(peer: Peer, client: JsonClient) -> None:
    peer.answers["fn"] = answer(body=executed(iccid="8999", nested={"a": [1, 2]}), content_type="application/json")
    got = await client.post(peer.url("fn"), "fn", {"x": "é", "n": 1}, headers={"Authorization": "Bearer t"})
    assert got == executed(iccid="8999", nested={"a": [1, 2]})
    (name, headers, raw), = peer.requests
    assert name == "fn" and raw == b'{"x":"\\u00e9","n":1}'
    assert headers["X-Admin-Protocol"] == ADMIN_PROTOCOL == "gsma/rsp/v2.2.0"
    assert headers["Content-Type"] == "application/json;charset=UTF-8"
    assert headers["Authorization"] == "Bearer t"


async def test_a_warning_is_a_success(peer: Peer, client: JsonClient) -> None:
    peer.answers["fn"] = answer(body=executed("Executed-WithWarning", eid="89"))
    assert (await client.post(peer.url("fn"), "fn", {}) or {})["eid"] == "89"


async def test_no_content_is_none_unless_the_function_has_output_data(peer: Peer, client: JsonClient) -> None:
    peer.answers["fn"] = answer(status=204)
    peer.answers["empty"] = answer(status=200, body=b"  \r\n")  # some servers answer an empty 200
    assert await client.post(peer.url("fn"), "fn", {}) is None
    assert await client.post(peer.url("empty"), "empty", {}) is None
    error = await failure(client.post(peer.url("fn"), "fn", {}, allow_empty=False))
    assert (error.status, error.unreachable, error.subject_code, error.message) == (204, False, None, "HTTP 204 without a response body")


# --- answers that fail -------------------------------------------------------------------------------------


async def test_a_failed_status_carries_the_exact_codes(peer: Peer, client: JsonClient) -> None:
    peer.answers["withcodes"] = answer(body=failed("8.2.1", "3.9", "8.2.1/3.9 Profile unknown"))
    peer.answers["bare"] = answer(body=failed("8.1", "1.2", "Not allowed"))
    error = await failure(client.post(peer.url("withcodes"), "confirmOrder", {}))
    assert (error.subject_code, error.reason_code, error.status, error.unreachable) == ("8.2.1", "3.9", 200, False)
    assert str(error) == "confirmOrder: 8.2.1/3.9 Profile unknown"  # the codes not repeated
    error = await failure(client.post(peer.url("bare"), "downloadOrder", {}))
    assert str(error) == "downloadOrder: 8.1/1.2 Not allowed" and error.detail == "8.1/1.2 Not allowed"


async def test_a_failed_status_becomes_the_callers_exception_class(peer: Peer) -> None:
    peer.answers["fn"] = answer(body=failed("8.8", "3.8", "x"))
    async with JsonClient(error=Es9Error) as es9, JsonClient(error=Es2Error) as es2:
        nine = await failure(es9.post(peer.url("fn"), "initiateAuthentication", {}), Es9Error)
        two = await failure(es2.post(peer.url("fn"), "downloadOrder", {}), Es2Error)
    assert (nine.function, nine.subject_code, nine.reason_code) == ("initiateAuthentication", "8.8", "3.8")
    assert (two.function, two.subject_code, two.reason_code) == ("downloadOrder", "8.8", "3.8")


async def test_an_http_error_with_an_html_body(peer: Peer, client: JsonClient) -> None:
    peer.answers["fn"] = answer(status=500, body=b"<html><body>Internal error</body></html>", content_type="text/html")
    error = await failure(client.post(peer.url("fn"), "fn", {}))
    assert (error.message, error.status, error.unreachable, error.subject_code, error.reason_code) == ("HTTP 500", 500, False, None, None)
    assert str(error) == "fn: HTTP 500"


async def test_an_http_error_explained_by_status_codes_keeps_them(peer: Peer, client: JsonClient) -> None:
    peer.answers["fn"] = answer(status=401, body=failed("1.1", "1.1", "unknown token"))
    peer.answers["ok"] = answer(status=503, body=executed())  # a success status does not make a 503 one
    error = await failure(client.post(peer.url("fn"), "fn", {}))
    assert (error.subject_code, error.reason_code, error.message, error.status) == ("1.1", "1.1", "unknown token (HTTP 401)", 401)
    error = await failure(client.post(peer.url("ok"), "ok", {}))
    assert (error.subject_code, error.message) == (None, "HTTP 503")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", "application/json", "HTTP 200: response body is not JSON (application/json)"),
        (b"\xff\xfe", "text/plain", "HTTP 200: response body is not JSON (text/plain)"),
        (b"[1, 2]", "application/json", "HTTP 200: response body is not a JSON object"),
        (b'{"iccid": "1"}', "application/json", "unexpected answer: no header.functionExecutionStatus"),
        (b'{"header": 1}', "application/json", "unexpected answer: no header.functionExecutionStatus"),
        (b'{"header": {"functionExecutionStatus": []}}', "application/json", "unexpected answer: no header.functionExecutionStatus"),
        (b'{"header": {"functionExecutionStatus": {"status": "Done"}}}', "application/json",
         "unexpected answer: functionExecutionStatus 'Done'"),
    ],
)
async def test_an_answer_that_is_not_the_binding(peer: Peer, client: JsonClient, body: bytes, content_type: str, message: str) -> None:
    peer.answers["fn"] = answer(body=body, content_type=content_type)
    error = await failure(client.post(peer.url("fn"), "fn", {}))
    assert (error.message, error.status, error.unreachable, error.subject_code) == (message, 200, False, None)


async def test_a_failed_status_with_malformed_codes_is_still_a_failure(peer: Peer, client: JsonClient) -> None:
    peer.answers["fn"] = answer(body={"header": {"functionExecutionStatus": {"status": "Failed", "statusCodeData": "x"}}})
    error = await failure(client.post(peer.url("fn"), "fn", {}))
    assert (error.subject_code, error.reason_code, error.message) == (None, None, "Failed")


async def test_redirects_are_not_followed(peer: Peer, client: JsonClient) -> None:
    peer.answers["fn"] = answer(status=307, headers={"Location": "/elsewhere"})
    peer.answers["elsewhere"] = answer(body=executed())
    error = await failure(client.post(peer.url("fn"), "fn", {"secret": "1"}))
    assert (error.message, error.status) == ("HTTP 307", 307)
    assert [name for name, _, _ in peer.requests] == ["fn"]


async def test_lenient_accepts_any_2xx_but_an_explicit_failure(peer: Peer, client: JsonClient) -> None:
    """The outbox's mode: an operator's callback receiver that answers 200 "OK" has taken the event."""
    peer.answers["text"] = answer(body=b"OK", content_type="text/plain")
    peer.answers["header"] = answer(body=executed(extra=1))
    peer.answers["refused"] = answer(body=failed("8.1.1", "3.8", "unknown ICCID"))
    peer.answers["down"] = answer(status=503, body=b"OK", content_type="text/plain")
    assert await client.post(peer.url("text"), "fn", {}, lenient=True) is None
    assert await client.post(peer.url("header"), "fn", {}, lenient=True) == executed(extra=1)
    error = await failure(client.post(peer.url("refused"), "fn", {}, lenient=True))
    assert error.detail == "8.1.1/3.8 unknown ICCID"
    assert (await failure(client.post(peer.url("down"), "fn", {}, lenient=True))).detail == "HTTP 503"


# --- the server unreachable: exit status 3 -------------------------------------------------------------------


async def test_connection_refused_is_unreachable(client: JsonClient) -> None:
    port = closed_port()
    error = await failure(client.post(f"http://127.0.0.1:{port}/gsma/rsp2/es2plus/fn", "fn", {}))
    assert error.unreachable and error.status is None and error.subject_code is None
    assert error.message.startswith(f"{TRANSPORT_FAILED}: cannot reach http://127.0.0.1:{port}: ")
    assert "Error(" not in error.message  # no aiohttp repr


async def test_a_server_slower_than_the_timeout_is_unreachable(peer: Peer) -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(status=204)

    peer.answers["fn"] = slow
    async with JsonClient(timeout=0.2) as client:
        loop = asyncio.get_running_loop()
        began = loop.time()
        error = await failure(client.post(peer.url("fn"), "fn", {}))
        assert loop.time() - began < 3
    assert error.unreachable and error.message == f"{TRANSPORT_FAILED}: cannot reach {peer.base}: no answer within 0.2 s"


async def test_tls_is_verified_against_the_configured_trust(tls_peer: tuple[Peer, Path]) -> None:
    peer, ca_file = tls_peer
    async with JsonClient() as system:  # the system trust store: the test CA is not in it
        error = await failure(system.post(peer.url("fn"), "fn", {}))
        assert error.unreachable and error.status is None
        assert error.message.startswith(f"{TRANSPORT_FAILED}: cannot reach {peer.base}: TLS certificate verify failed: ")
        assert error.message.endswith("unable to get local issuer certificate") and "SSLContext" not in error.message
        # one request may trust more (the outbox: an operator's own CA); the next is back to the session's
        pem = load_certificate(ca_file).public_bytes(serialization.Encoding.PEM).decode()
        assert await system.post(peer.url("fn"), "fn", {}, ssl_context=system_ssl_context(pem)) == executed(ok="yes")
        assert (await failure(system.post(peer.url("fn"), "fn", {}))).unreachable
    async with JsonClient(ca_file=ca_file) as trusting:
        assert await trusting.post(peer.url("fn"), "fn", {}) == executed(ok="yes")
    async with JsonClient(insecure=True) as insecure:
        assert await insecure.post(peer.url("fn"), "fn", {}) == executed(ok="yes")
    with pytest.raises(ValueError):
        JsonClient(insecure=True, ca_file=ca_file)


# --- the callers keep their exceptions and their messages ------------------------------------------------------


async def test_es9_client_errors(peer: Peer) -> None:
    """Es9Error keeps its argument order; an unreachable server's message starts with "HTTP transport failed",
    which is how ``smdp lpa download`` tells exit status 3 from 1 (it has only the message)."""
    assert str(Es9Error("8.2", "1.2", "Profile not released", "authenticateClient")) == "authenticateClient: 8.2/1.2 Profile not released"
    async with Es9Client(insecure=True) as es9:
        error = await failure(es9.handle_notification(f"127.0.0.1:{closed_port()}", pending_notification="AA=="), Es9Error)
    assert error.unreachable and error.message.startswith(TRANSPORT_FAILED) and error.function == "handleNotification"
    assert isinstance(error, JsonCallError)


async def test_es2_client_sends_its_header_and_token_and_needs_an_answer(peer: Peer) -> None:
    peer.answers["downloadOrder"] = answer(body=executed(iccid="8999"))
    peer.answers["cancelOrder"] = answer(status=204)
    app = web.Application()  # Es2Client appends /gsma/rsp2/es2plus/{function}: serve that path too
    app.router.add_post("/gsma/rsp2/es2plus/{name}", peer.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with Es2Client(base, "smdp_abc", "acme") as es2:
            assert await es2.call("downloadOrder", iccid=None, profileType="demo") == executed(iccid="8999")
            error = await failure(es2.call("cancelOrder", iccid="8999"), Es2Error)
        (_, headers, raw), _ = peer.requests
        sent = json.loads(raw)
        assert headers["Authorization"] == "Bearer smdp_abc" and headers["X-Admin-Protocol"] == ADMIN_PROTOCOL
        assert sent["header"]["functionRequesterIdentifier"] == "acme" and sent["profileType"] == "demo"
        assert "iccid" not in sent and len(sent["header"]["functionCallIdentifier"]) == 36
        assert (error.status, error.unreachable, str(error)) == (204, False, "cancelOrder: HTTP 204 without a response body")
    finally:
        await runner.cleanup()
    async with Es2Client("https://127.0.0.1:1", "smdp_abc", "acme") as es2:
        error = await failure(es2.call("downloadOrder"), Es2Error)
    assert error.unreachable and "cannot reach https://127.0.0.1:1: " in str(error)
