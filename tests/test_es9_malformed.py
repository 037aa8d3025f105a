"""Malformed input on every ES9+ endpoint answers a well-formed SGP.22 error (HTTP 200, status Failed), never a 500.

A hand-written corpus covers each kind of damage; a hypothesis strategy then throws random JSON at every
endpoint.  The server runs in a background thread so that hypothesis can drive it with a plain client.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import start_server

ENDPOINTS = {
    "initiateAuthentication": ["euiccChallenge", "euiccInfo1", "smdpAddress"],
    "authenticateClient": ["transactionId", "authenticateServerResponse"],
    "getBoundProfilePackage": ["transactionId", "prepareDownloadResponse"],
    "handleNotification": ["pendingNotification"],
    "cancelSession": ["transactionId", "cancelSessionResponse"],
}
HEADERS = {"Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v2.2.0"}


class ThreadedServer:
    def __init__(self, tmp: Path, manifest: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.runner = self._run(start_server(tmp / "data", manifest, f"sqlite:///{tmp / 'smdp.db'}"))
        self.host, port = self.server.address.split(":")
        self.port = int(port)
        self.context = ssl._create_unverified_context()

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def post(self, function: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30)
        try:
            conn.request("POST", f"/gsma/rsp2/es9plus/{function}", body=body, headers=HEADERS if headers is None else headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self._run(self.runner.aclose())
        self._run(self.server.db.dispose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def threaded(tmp_path_factory: pytest.TempPathFactory, pki_manifest: Path) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path_factory.mktemp("malformed"), pki_manifest)
    yield server
    server.close()


def assert_sgp22_failure(status: int, body: bytes) -> dict:
    assert status == 200, (status, body[:200])
    document = json.loads(body)
    assert set(document) == {"header"}, document
    execution = document["header"]["functionExecutionStatus"]
    assert execution["status"] == "Failed"
    code = execution["statusCodeData"]
    assert isinstance(code["subjectCode"], str) and isinstance(code["reasonCode"], str)
    return code


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _corpus() -> list[tuple[str, str, bytes, dict[str, str] | None]]:
    cases: list[tuple[str, str, bytes, dict[str, str] | None]] = []
    for function, names in ENDPOINTS.items():
        def add(label: str, body: bytes, headers: dict[str, str] | None = None, function: str = function) -> None:
            cases.append((function, label, body, headers))

        add("not json", b"{not json")
        add("not utf-8", b"\xff\xfe{}")
        add("json array", b"[]")
        add("json string", b'"x"')
        add("empty object", b"{}")
        add("huge body", json.dumps({names[0]: "A" * 200_000}).encode())
        add("wrong content type", b"{}", {"Content-Type": "text/plain", "X-Admin-Protocol": "gsma/rsp/v2.2.0"})
        add("no admin protocol", b"{}", {"Content-Type": "application/json"})
        add("v3 admin protocol", b"{}", {"Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v3.0.0"})
        for name in names:
            others = {n: b64(b"\x30\x00") for n in names if n != name}
            if "transactionId" in others:
                others["transactionId"] = "00112233445566778899AABBCCDDEEFF"
            add(f"{name} missing", json.dumps(others).encode())
            for label, value in [
                ("int", 12),
                ("null", None),
                ("list", [1]),
                ("bad base64", "***"),
                ("unpadded base64", "MAA"),
                ("garbage der", b64(b"\x01\x02\x03\x04")),
                ("truncated der", b64(b"\xbf\x20\x10\x81\x03")),
                ("trailing bytes", b64(b"\x30\x00\x00")),
                ("indefinite length", b64(b"\x30\x80\x00\x00")),
                ("odd hex", "ABC"),
            ]:
                add(f"{name} {label}", json.dumps({**others, name: value}).encode())
    return cases


CORPUS = _corpus()


@pytest.mark.parametrize("function,label,body,headers", CORPUS, ids=[f"{c[0]}-{c[1]}" for c in CORPUS])
def test_es9_malformed_request_gets_sgp22_error(threaded: ThreadedServer, function, label, body, headers) -> None:
    status, answer = threaded.post(function, body, headers)
    assert_sgp22_failure(status, answer)


def test_es9_error_codes_for_transport_problems(threaded: ThreadedServer) -> None:
    code = assert_sgp22_failure(*threaded.post("initiateAuthentication", b"{", None))
    assert (code["subjectCode"], code["reasonCode"]) == ("1.6", "2.1")
    code = assert_sgp22_failure(*threaded.post("authenticateClient", b"{}", None))
    assert (code["subjectCode"], code["reasonCode"]) == ("1.6", "2.2")
    code = assert_sgp22_failure(
        *threaded.post("initiateAuthentication", b"{}", {"Content-Type": "application/json", "X-Admin-Protocol": "x"})
    )
    assert (code["subjectCode"], code["reasonCode"]) == ("1.2.2", "2.1")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40) | st.binary(max_size=64).map(b64),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_es9_random_json_never_breaks_the_server(threaded: ThreadedServer, data: st.DataObject) -> None:
    function = data.draw(st.sampled_from(sorted(ENDPOINTS)))
    names = ENDPOINTS[function]
    body = data.draw(st.dictionaries(st.sampled_from(names + ["extra"]), json_values, max_size=len(names) + 1))
    status, answer = threaded.post(function, json.dumps(body).encode())
    assert_sgp22_failure(status, answer)
