"""Malformed input on every ES9+ endpoint answers a well-formed SGP.22 error (HTTP 200, status Failed), never a 500,
and with its precise code: 1.6/2.1 invalid, 1.6/2.2 missing, or the function's own code; never 1.2/4.2
"Execution error", which is kept for real server faults (and fails any test it fires in, see conftest.py).

A hand-written corpus covers each kind of damage, each case with the (subjectCode, reasonCode) it must get;
a hypothesis strategy then throws random JSON at every endpoint.  The server runs in a background thread so
that hypothesis can drive it with a plain client.  A damaged field after the transactionId is tried twice:
with a well-formed unknown transactionId (the session is looked up first: 8.10.1/3.9) and with the
transactionId of a live session in the step the function expects, so that the field's reader is reached.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smdp.codec import asn1
from smdp.codec.b64 import b64decode, b64encode
from smdp.codec.tlv import iter_tlvs, read_tlv, tlv
from smdp.crypto import ecdsa
from smdp.euicc import VirtualEuicc
from smdp.lpa.download import download
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import encode_header_iccid, luhn_check_digit
from smdp.rsp import es9
from smdp.services.profiles import import_profile
from tests.conftest import ExecutionErrors, start_server
from tests.es9_tools import HookedClient, codes, euicc_key, open_euicc, resign
from tests.test_es9_parse import (
    ICCID,
    installation_result,
    metadata,
    other_notification,
    self_signed_certificate,
    with_unknown_final_result,
)

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


class _Authenticated(Exception):
    def __init__(self, transaction_id: str) -> None:
        super().__init__(transaction_id)
        self.transaction_id = transaction_id


class LiveSessions:
    """Opens download sessions on the threaded server with a virtual eUICC going through the real flow."""

    MATCHING_ID = "MALFORMED-1"

    def __init__(self, threaded: ThreadedServer, euicc: VirtualEuicc) -> None:
        self.threaded = threaded
        self.euicc = euicc
        self.code = f"LPA:1${threaded.server.address}${self.MATCHING_ID}"

    def session(self, step: str) -> str:
        """The transactionId of a new session after initiateAuthentication ("initiated") or authenticateClient."""
        return self._initiated() if step == "initiated" else asyncio.run(self._authenticated())

    def _initiated(self) -> str:
        body = {
            "euiccChallenge": b64(os.urandom(16)),
            "euiccInfo1": b64(self.euicc.euicc_info1()),
            "smdpAddress": self.threaded.server.address,
        }
        status, answer = self.threaded.post("initiateAuthentication", json.dumps(body).encode())
        assert status == 200, status
        document = json.loads(answer)
        assert document["header"]["functionExecutionStatus"]["status"] == "Executed-Success", document
        return document["transactionId"]

    async def _authenticated(self) -> str:
        client = HookedClient()

        def stop(body: dict[str, Any]) -> dict[str, Any]:  # the session is now AUTHENTICATED: leave it there
            raise _Authenticated(body["transactionId"])

        client.request_hooks["getBoundProfilePackage"] = stop
        try:
            result = await download(self.euicc, self.code, client=client)
        except _Authenticated as reached:
            return reached.transaction_id
        finally:
            await client.close()
        raise AssertionError(f"the download ended before getBoundProfilePackage: {result}")

    def download(self, request_hooks: dict[str, Any], response_hooks: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
        """A whole download through ES9+ hooks (see tests.es9_tools.HookedClient); the DownloadResult."""

        async def run():  # type: ignore[no-untyped-def]
            client = HookedClient()
            client.request_hooks.update(request_hooks)
            client.response_hooks.update(response_hooks or {})
            try:
                return await download(self.euicc, self.code, client=client)
            finally:
                await client.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def live(threaded: ThreadedServer, tmp_path_factory: pytest.TempPathFactory, pki_manifest: Path) -> LiveSessions:
    digits = "894400000000000001"
    profile = build_demo_profile(digits + luhn_check_digit(digits), "001010000000001", bytes(16), bytes(range(16)))
    threaded._run(import_profile(threaded.server.db, profile, matching_id=LiveSessions.MATCHING_ID, reusable=True))
    return LiveSessions(threaded, open_euicc(tmp_path_factory.mktemp("live-euicc"), pki_manifest))


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


Code = tuple[str, str]
Case = tuple[str, str, bytes, dict[str, str] | None, Code]  # function, label, body, headers, expected code

INVALID: Code = ("1.6", "2.1")  # Invalid input parameter
MISSING: Code = ("1.6", "2.2")  # Mandatory element missing
BAD_CONTENT_TYPE: Code = ("1.2.1", "2.1")
BAD_PROTOCOL: Code = ("1.2.2", "2.1")
UNKNOWN_SESSION: Code = ("8.10.1", "3.9")  # the RSP session of the transactionId is unknown
BAD_ADDRESS: Code = ("8.8.1", "3.8")  # Invalid SM-DP+ Address
NO_COMMON_CI: Code = ("8.8.2", "3.1")  # none of the eUICC's CI public keys is supported
BAD_SVN: Code = ("8.8.3", "3.1")  # Specification Version Number not supported
SIGNATURE_INVALID: Code = ("8.1", "6.1")
EXECUTION_ERROR: Code = ("1.2", "4.2")  # the catch-all: a server fault, never the answer to bad input

UNKNOWN_TID = "00112233445566778899AABBCCDDEEFF"  # well-formed, never issued
LIVE_TID = "@LIVE-TRANSACTION-ID@"  # replaced by the transactionId of a live session (see ``live``)
ADDRESS = "@SMDP-ADDRESS@"  # replaced by the server's address
# The session step each function expects: initiateAuthentication done, or authenticateClient too.
LIVE_STEP = {"authenticateClient": "initiated", "getBoundProfilePackage": "authenticated", "cancelSession": "authenticated"}
OUTER_TAG = {"authenticateServerResponse": 0xBF38, "prepareDownloadResponse": 0xBF21, "cancelSessionResponse": 0xBF41}
# The eUICC's error alternative of each signed answer ([1]), which the LPA forwards as it is.
EUICC_ERROR = {
    "authenticateServerResponse": tlv(0xA1, tlv(0x80, bytes(16)) + tlv(0x02, b"\x7f")),
    "prepareDownloadResponse": tlv(0xA1, tlv(0x80, bytes(16)) + tlv(0x02, b"\x7f")),
    "cancelSessionResponse": tlv(0x81, b"\x05"),
}


def _euicc_info1(svn: bytes = b"\x02\x02\x00", pkid: bytes = bytes(20)) -> bytes:
    value = {"svn": svn, "euiccCiPKIdListForVerification": [pkid], "euiccCiPKIdListForSigning": [pkid]}
    return asn1.rsp().encode("EUICCInfo1", value)


_CERTIFICATE = self_signed_certificate()  # a certificate, but no eUICC's

# The other fields of a case, valid so that the case damages one field only.  (The DER fields after a
# transactionId are placeholders: they are never read when the transactionId is the damaged field.)
VALID: dict[str, Any] = {
    "euiccChallenge": b64(bytes(range(16))),
    "euiccInfo1": b64(_euicc_info1()),  # decodes; its CI (zeros) is no CI of ours
    "smdpAddress": ADDRESS,
    "transactionId": UNKNOWN_TID,
    "authenticateServerResponse": b64(tlv(0xBF38, tlv(0xA0, b""))),
    "prepareDownloadResponse": b64(tlv(0xBF21, tlv(0xA0, b""))),
    "cancelSessionResponse": b64(tlv(0xBF41, tlv(0xA0, b""))),
}

# Damage done to any field: the value, and its code for a base64/DER field (a string field differs, see _expected).
DAMAGES: list[tuple[str, Any]] = [
    ("null", None),
    ("int", 12),
    ("bool", True),
    ("list", [1]),
    ("object", {}),
    ("empty string", ""),
    ("bad base64", "***"),
    ("unpadded base64", "MAA"),
    ("odd hex", "ABC"),
    ("garbage der", b64(b"\x01\x02\x03\x04")),
    ("truncated der", b64(b"\xbf\x20\x10\x81\x03")),
    ("trailing bytes", b64(b"\x30\x00\x00")),
    ("indefinite length", b64(b"\x30\x80\x00\x00")),
    ("wrong type", b64(b"\x30\x00")),
    ("too long", "A" * 50_000),
]


def _expected(name: str, value: Any) -> Code:
    if value is None:
        return MISSING
    if not isinstance(value, str):
        return INVALID
    if name == "smdpAddress" and len(value) <= 255:
        return BAD_ADDRESS  # any string of a sane length is a possible address, and this one is not ours
    return INVALID


def _special(name: str) -> list[tuple[str, Any, Code]]:
    """Damage that only makes sense for one field: unknown CHOICE alternatives, eUICC errors, ..."""
    if name in OUTER_TAG:
        outer = OUTER_TAG[name]
        return [
            ("unknown alternative", b64(tlv(outer, tlv(0xA5, b""))), INVALID),
            ("primitive alternative", b64(tlv(outer, tlv(0x85, b"\x00"))), INVALID),
            ("euicc error", b64(tlv(outer, EUICC_ERROR[name])), INVALID),
            ("empty ok alternative", b64(tlv(outer, tlv(0xA0, b""))), INVALID),
            ("bytes after the alternative", b64(tlv(outer, tlv(0xA0, b"") + b"\x00\x00")), INVALID),
            ("other function's answer", b64(tlv(0xBF37, tlv(0xA0, b""))), INVALID),
            ("empty", b64(tlv(outer, b"")), INVALID),
        ]
    if name == "pendingNotification":
        pir = installation_result()
        return [
            ("unknown alternative", b64(tlv(0xA5, b"")), INVALID),
            ("unknown tagged alternative", b64(tlv(0xBF2D, tlv(0x80, b"\x01"))), INVALID),
            ("unknown finalResult alternative", b64(with_unknown_final_result(pir)), INVALID),
            ("primitive finalResult alternative", b64(with_unknown_final_result(pir, 0x85)), INVALID),
            ("iccid of 3 bytes", b64(installation_result(meta=metadata(iccid=bytes(3)))), INVALID),
            ("negative seqNumber", b64(installation_result(meta=metadata(seq=-1))), INVALID),
            ("huge seqNumber", b64(installation_result(meta=metadata(seq=2**64))), INVALID),
            ("empty transactionId", b64(installation_result(transaction_id=b"")), INVALID),
            # Well-formed: parsed (the ICCID kept as received, or absent), then refused for the unknown session.
            ("iccid in reading order", b64(installation_result(meta=metadata(iccid=encode_header_iccid(ICCID)))), UNKNOWN_SESSION),
            ("iccid absent", b64(installation_result(meta=metadata(iccid=None))), UNKNOWN_SESSION),
            ("error result", b64(installation_result(final=("errorResult", {"bppCommandId": 3, "errorReason": 1}))), UNKNOWN_SESSION),
            (
                "other notification, certificate no eUICC's",
                b64(other_notification(metadata(iccid=None, event="delete"), _CERTIFICATE)),
                SIGNATURE_INVALID,
            ),
        ]
    if name == "euiccInfo1":
        return [
            ("unknown CI", b64(_euicc_info1()), NO_COMMON_CI),
            ("svn 3", b64(_euicc_info1(svn=b"\x03\x00\x00")), BAD_SVN),
            ("svn empty", b64(_euicc_info1(svn=b"")), INVALID),  # SIZE(3): was an IndexError, 1.2/4.2
            ("svn of 4 bytes", b64(_euicc_info1(svn=b"\x02\x02\x00\x00")), INVALID),
            ("other type", b64(tlv(0xBF22, b"")), INVALID),
            ("no CI lists", b64(tlv(0xBF20, tlv(0x82, b"\x02\x02\x00"))), INVALID),
        ]
    if name == "euiccChallenge":
        return [("15 bytes", b64(bytes(15)), INVALID), ("17 bytes", b64(bytes(17)), INVALID)]
    if name == "smdpAddress":
        return [("other address", "smdp.example.com", BAD_ADDRESS), ("our address, other port", ADDRESS + "0", BAD_ADDRESS)]
    if name == "transactionId":
        return [
            ("17 bytes", "00" * 17, INVALID),
            ("0x prefix", "0x" + UNKNOWN_TID[:30], INVALID),
            ("hex with spaces", "00 11 22 33", INVALID),
            ("lower case, unknown", UNKNOWN_TID.lower(), UNKNOWN_SESSION),
            ("1 byte, unknown", "00", UNKNOWN_SESSION),
        ]
    return []


def _corpus() -> list[Case]:
    cases: list[Case] = []
    for function, names in ENDPOINTS.items():
        def add(label: str, body: bytes, expected: Code, headers: dict[str, str] | None = None, function: str = function) -> None:
            cases.append((function, label, body, headers, expected))

        add("not json", b"{not json", INVALID)
        add("not utf-8", b"\xff\xfe{}", INVALID)
        add("empty body", b"", INVALID)
        add("json array", b"[]", INVALID)
        add("json string", b'"x"', INVALID)
        add("json number", b"12", INVALID)
        add("json null", b"null", INVALID)
        add("empty object", b"{}", MISSING)
        add("huge body", json.dumps({names[0]: "A" * 200_000}).encode(), INVALID)
        add("deep json object", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, INVALID)  # RecursionError in json
        add("deep json array", b"[" * 60_000, INVALID)
        add("deep json field", b'{"%s":' % names[0].encode() + b"[" * 30_000 + b"]" * 30_000 + b"}", INVALID)
        add("wrong content type", b"{}", BAD_CONTENT_TYPE, {"Content-Type": "text/plain", "X-Admin-Protocol": "gsma/rsp/v2.2.0"})
        add("no content type", b"{}", BAD_CONTENT_TYPE, {"X-Admin-Protocol": "gsma/rsp/v2.2.0"})
        add("no admin protocol", b"{}", BAD_PROTOCOL, {"Content-Type": "application/json"})
        add("v3 admin protocol", b"{}", BAD_PROTOCOL, {"Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v3.0.0"})
        for name in names:
            others = {n: VALID[n] for n in names if n != name}
            damages = [(label, value, _expected(name, value)) for label, value in DAMAGES] + _special(name)
            # After a well-formed transactionId the session is looked up first: unknown, whatever the damage.
            after_transaction_id = "transactionId" in others
            add(f"{name} missing", json.dumps(others).encode(), UNKNOWN_SESSION if after_transaction_id else MISSING)
            for label, value, expected in damages:
                expected = UNKNOWN_SESSION if after_transaction_id else expected
                add(f"{name} {label}", json.dumps({**others, name: value}).encode(), expected)
            if after_transaction_id:  # the same damage in a live session: the field's reader answers
                live = {**others, "transactionId": LIVE_TID}
                add(f"live session, {name} missing", json.dumps(live).encode(), MISSING)
                for label, value, expected in damages:
                    add(f"live session, {name} {label}", json.dumps({**live, name: value}).encode(), expected)
    return cases


CORPUS = _corpus()
assert len({(c[0], c[1]) for c in CORPUS}) == len(CORPUS), "corpus labels must be unique"


@pytest.mark.parametrize("function,label,body,headers,expected", CORPUS, ids=[f"{c[0]}-{c[1]}" for c in CORPUS])
def test_es9_malformed_request_gets_its_sgp22_code(
    threaded: ThreadedServer, live: LiveSessions, function: str, label: str, body: bytes, headers: dict[str, str] | None, expected: Code
) -> None:
    body = body.replace(ADDRESS.encode(), threaded.server.address.encode())
    if LIVE_TID.encode() in body:
        body = body.replace(LIVE_TID.encode(), live.session(LIVE_STEP[function]).encode())
    status, answer = threaded.post(function, body, headers)
    code = assert_sgp22_failure(status, answer)
    assert (code["subjectCode"], code["reasonCode"]) == expected, code["message"]


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
    body = data.draw(st.dictionaries(st.sampled_from([*names, "extra"]), json_values, max_size=len(names) + 1))
    status, answer = threaded.post(function, json.dumps(body).encode())
    code = assert_sgp22_failure(status, answer)
    assert (code["subjectCode"], code["reasonCode"]) in RANDOM_JSON_CODES, code["message"]


# Random JSON gets one of these; 1.2/4.2 (the catch-all) never.  (initiateAuthentication's own 8.8.x codes
# would need a random euiccInfo1 to decode as EUICCInfo1 first.)
RANDOM_JSON_CODES = {INVALID, MISSING, UNKNOWN_SESSION}


@pytest.mark.parametrize("tag", [0xA1, 0xA5, 0x81], ids=["A1", "A5", "81"])
def test_es9_signed_ctx_params1_of_unknown_alternative_is_invalid_input(live: LiveSessions, pki_manifest: Path, tag: int) -> None:
    """A genuine eUICC signature over an EuiccSigned1 whose ctxParams1 is no SGP.22 v2 alternative: 1.6/2.1."""
    key = euicc_key(pki_manifest)

    def unknown_ctx_params1(body: dict[str, Any]) -> dict[str, Any]:
        der = b64decode(body["authenticateServerResponse"])
        outer = read_tlv(der)
        parts = list(iter_tlvs(read_tlv(outer.value).value))
        members = list(iter_tlvs(parts[0].value))
        assert members[-1].tag == 0xA0  # ctxParams1: ctxParamsForCommonAuthentication [0]
        content = members[-1].value if tag & 0x20 else b"\x00"
        signed = tlv(0x30, b"".join(m.raw for m in members[:-1]) + tlv(tag, content))
        assert asn1.rsp().decode("EuiccSigned1", signed)["ctxParams1"] == (None, None)
        signature = tlv(es9.TAG_SIGNATURE, ecdsa.sign(key, signed))
        answer = tlv(outer.tag, tlv(0xA0, signed + signature + parts[2].raw + parts[3].raw))
        return {**body, "authenticateServerResponse": b64encode(answer)}

    result = live.download({"authenticateClient": unknown_ctx_params1})
    assert result.stage == "authenticateClient" and codes(result) == INVALID, result
    assert "ctxParams1" in (result.message or "")


@pytest.mark.parametrize("otpk", [b"\x04" + bytes(64), b"\x04"], ids=["not on the curve", "1 byte"])
def test_es9_signed_euicc_otpk_that_is_no_point_is_invalid_input(live: LiveSessions, pki_manifest: Path, otpk: bytes) -> None:
    """A genuine eUICC signature over an EUICCSigned2 whose euiccOtpk is no public key: 1.6/2.1."""
    key = euicc_key(pki_manifest)
    received: dict[str, Any] = {}

    def other_otpk(body: dict[str, Any]) -> dict[str, Any]:
        suffix = b64decode(received["smdpSignature2"])
        der = resign(b64decode(body["prepareDownloadResponse"]), key, "EUICCSigned2", lambda v: v.update(euiccOtpk=otpk), suffix=suffix)
        return {**body, "prepareDownloadResponse": b64encode(der)}

    def keep(answer: dict[str, Any]) -> dict[str, Any]:
        received.update(answer)
        return answer

    result = live.download({"getBoundProfilePackage": other_otpk}, {"authenticateClient": keep})
    assert result.stage == "getBoundProfilePackage" and codes(result) == INVALID, result


class _BrokenDatabase:
    def transaction(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("injected fault: the database is unreachable")


@pytest.mark.allow_execution_error
def test_a_real_server_fault_answers_execution_error(
    threaded: ThreadedServer, monkeypatch: pytest.MonkeyPatch, execution_errors: ExecutionErrors
) -> None:
    """The catch-all still renders 1.2/4.2 for a real fault (here the download service's database fails);
    the detector sees its record from the server thread, and this test only passes because it opts out."""
    monkeypatch.setattr(threaded.server.download, "db", _BrokenDatabase())
    body = {"euiccChallenge": b64(bytes(16)), "euiccInfo1": "MAA=", "smdpAddress": "x"}
    code = assert_sgp22_failure(*threaded.post("initiateAuthentication", json.dumps(body).encode()))
    assert (code["subjectCode"], code["reasonCode"]) == INVALID  # bad input still gets its code first
    answer = threaded.post("handleNotification", json.dumps({"pendingNotification": b64(installation_result())}).encode())
    code = assert_sgp22_failure(*answer)
    assert (code["subjectCode"], code["reasonCode"]) == EXECUTION_ERROR
    assert code["message"] == "1.2/4.2 Execution error"  # nothing of the fault reaches the client
    records = execution_errors.records()
    assert [r.getMessage() for r in records] == ["/gsma/rsp2/es9plus/handleNotification: unexpected error"]
    assert records[0].exc_info is not None and isinstance(records[0].exc_info[1], RuntimeError)


def test_the_detector_takes_the_catch_all_record_only(execution_errors: ExecutionErrors) -> None:
    logger = logging.getLogger("smdp.web.binding")
    logger.error("an error of the binding, but not the catch-all")
    logger.warning("a warning", extra={"smdp_catch_all": False})
    assert execution_errors.records() == []


@pytest.mark.allow_execution_error
def test_the_detector_takes_a_record_logged_by_another_thread(execution_errors: ExecutionErrors) -> None:
    from smdp.web.binding import CATCH_ALL_MARK

    def fault() -> None:
        try:
            raise RuntimeError("in a thread")
        except RuntimeError:
            logging.getLogger("smdp.web.binding").exception("%s: unexpected error", "/x", extra={CATCH_ALL_MARK: True})

    thread = threading.Thread(target=fault)
    thread.start()
    thread.join()
    assert [r.getMessage() for r in execution_errors.records()] == ["/x: unexpected error"]
