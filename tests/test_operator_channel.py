"""The operator channel: callback TLS and URL policy, per-operator senders, dead letters, throttled logging,
API token format and the CLI's token sources."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlmodel import col, select

from smdp.cli import CliError, build_parser
from smdp.services.logthrottle import LogThrottle
from smdp.services.operators import OperatorError, add_operator, new_token, set_callback
from smdp.services.outbox import Outbox
from smdp.store.db import Database
from smdp.store.operators import operator_by_name
from smdp.store.outbox import event_state
from smdp.store.tables import Operator, OutboxEvent

CALLBACK_PATH = "/gsma/rsp2/es2plus/handleDownloadProgressInfo"


async def wait_for(predicate: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """SQLite, and PostgreSQL when reachable."""
    database = Database(database_url)
    await database.create_all()
    yield database
    await database.dispose()


async def queue(db: Database, operator: str, count: int) -> list[str]:
    """``count`` events for ``operator``; returns their event ids, in queue order."""
    ids = []
    async with db.transaction() as session:
        owner = await operator_by_name(session, operator)
        assert owner is not None and owner.id is not None
        for n in range(count):
            event_id = str(uuid.uuid4())
            payload = {"header": {"functionRequesterIdentifier": "smdp", "functionCallIdentifier": event_id},
                       "notificationPointId": 1, "iccid": f"8999{n:016d}"}
            session.add(OutboxEvent(event_id=event_id, operator_id=owner.id, payload=payload))
            ids.append(event_id)
    return ids


async def events(db: Database, operator: str | None = None) -> list[OutboxEvent]:
    async with db.transaction() as session:
        query = select(OutboxEvent).order_by(col(OutboxEvent.id))
        if operator is not None:
            owner = await operator_by_name(session, operator)
            assert owner is not None
            query = query.where(OutboxEvent.operator_id == owner.id)
        return list((await session.exec(query)).all())


@dataclass
class Endpoint:
    """An operator's ES2+ endpoint: records callbacks (their functionCallIdentifier); can hang, fail or redirect."""

    status: int = 204
    hang: bool = False
    received: list[str] = field(default_factory=list)
    requests: int = 0
    url: str = ""
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = json.loads(await request.read())
        if self.hang:
            await asyncio.wait_for(self.released.wait(), 30)
        if self.status // 100 == 3:
            return web.Response(status=self.status, headers={"Location": "/elsewhere" + CALLBACK_PATH})
        if self.status // 100 == 2:
            self.received.append(body["header"]["functionCallIdentifier"])
        return web.Response(status=self.status)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.received.append("followed a redirect")
        return web.Response(status=204)


async def start(stack: AsyncExitStack, endpoint: Endpoint, context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Endpoint:
    app = web.Application()
    app.router.add_post(CALLBACK_PATH, endpoint.handle)
    app.router.add_post("/elsewhere" + CALLBACK_PATH, endpoint.elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    stack.callback(endpoint.released.set)  # runs before the cleanup: a hanging handler returns
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    endpoint.url = f"{'https' if context else 'http'}://{host}:{runner.addresses[0][1]}"
    return endpoint


@asynccontextmanager
async def delivering(outbox: Outbox) -> AsyncIterator[Outbox]:
    task = asyncio.create_task(outbox.run())
    try:
        yield outbox
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- TLS ------------------------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
                 *, ca: bool, names: list[x509.GeneralName]) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer_key is not key:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca:  # digitalSignature too: a self-signed server certificate is its own trust anchor
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _server_context(tmp: Path, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext:
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_text(_pem(certificate))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


@dataclass
class Pki:
    ca_pem: str  # the operator's private CA
    good: ssl.SSLContext  # a server certificate for 127.0.0.1 and localhost, from that CA
    wrong_pem: str  # a self-signed certificate for wrong.example
    wrong: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("callback-pki")
    ca_key, leaf_key, wrong_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("operator test CA", ca_key, "operator test CA", ca_key, ca=True, names=[])
    leaf = _certificate("127.0.0.1", leaf_key, "operator test CA", ca_key, ca=False,
                        names=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    wrong = _certificate("wrong.example", wrong_key, "wrong.example", wrong_key, ca=True, names=[x509.DNSName("wrong.example")])
    return Pki(_pem(ca), _server_context(tmp, "leaf", leaf, leaf_key), _pem(wrong), _server_context(tmp, "wrong", wrong, wrong_key))


async def test_callbacks_verify_tls_and_follow_no_redirects(db: Database, pki: Pki) -> None:
    """A self-signed endpoint with the wrong name, or one whose CA isn't configured, gets nothing (the error is
    recorded); with its CA configured and the right name it gets the event.  A redirect is a failure, not
    followed; plain http to a non-loopback host is never attempted."""
    async with AsyncExitStack() as stack:
        good, wrong, unknown = Endpoint(), Endpoint(), Endpoint()
        await start(stack, good, pki.good)
        await start(stack, wrong, pki.wrong)
        await start(stack, unknown, pki.good, host="localhost")
        redirecting = await start(stack, Endpoint(status=307))
        await add_operator(db, "good")
        await set_callback(db, "good", good.url, pki.ca_pem)
        await add_operator(db, "wrong")
        await set_callback(db, "wrong", wrong.url, pki.wrong_pem)  # trusted, but not 127.0.0.1's certificate
        await add_operator(db, "unknown", unknown.url)  # system trust store only
        await add_operator(db, "redirecting", redirecting.url)
        await add_operator(db, "remote")
        async with db.transaction() as session:  # stored before the rule existed: http to a remote host
            remote = await operator_by_name(session, "remote")
            assert remote is not None
            remote.callback_url = "http://192.0.2.1:9"
            session.add(remote)
        ids = {name: await queue(db, name, 1) for name in ("good", "wrong", "unknown", "redirecting", "remote")}
        async with delivering(Outbox(db, poll=0.02, timeout=5)):
            async def settled() -> bool:
                return all(e.delivered_at is not None or e.last_error for e in await events(db))

            await wait_for(settled)
        assert good.received == ids["good"]
        assert wrong.received == unknown.received == redirecting.received == []
        assert redirecting.requests == 1  # asked once, the redirect not followed
        by_operator = {name: (await events(db, name))[0] for name in ids}
        assert by_operator["good"].delivered_at is not None
        for name in ("wrong", "unknown", "redirecting", "remote"):
            assert by_operator[name].delivered_at is None and by_operator[name].dead_at is None
        assert "certificate" in (by_operator["wrong"].last_error or "").lower()
        assert "mismatch" in (by_operator["wrong"].last_error or "") and "127.0.0.1" in (by_operator["wrong"].last_error or "")
        assert "certificate" in (by_operator["unknown"].last_error or "").lower()
        assert by_operator["redirecting"].last_error == "HTTP 307"
        assert "loopback" in (by_operator["remote"].last_error or "")


async def test_callback_configuration_is_checked(db: Database, database_url: str, pki: Pki, tmp_path: Path) -> None:
    await add_operator(db, "acme")
    for url in ("http://ops.example/es2", "ftp://127.0.0.1/", "https://", "https://user:pw@ops.example/", "http://10.0.0.1:80/"):
        with pytest.raises(OperatorError):
            await set_callback(db, "acme", url)
    with pytest.raises(OperatorError):
        await add_operator(db, "plain", "http://ops.example/es2")
    for url in ("https://ops.example/es2", "http://127.0.0.1:8080", "http://localhost/x", "http://[::1]:8080"):
        await set_callback(db, "acme", url)
    with pytest.raises(OperatorError, match="PEM"):
        await set_callback(db, "acme", "https://ops.example/es2", "not a certificate")
    # the CLI: smdp operator callback NAME URL --ca-file F
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(pki.ca_pem)
    (tmp_path / "data").mkdir()  # only serve and pki init create a data directory
    common = ["--data-dir", str(tmp_path / "data"), "--database-url", database_url]
    args = build_parser().parse_args(["operator", "callback", "acme", "https://ops.example/es2", "--ca-file", str(ca_file), *common])
    assert await args.handler(args) == 0
    async with db.transaction() as session:
        acme = await operator_by_name(session, "acme")
    assert acme is not None and acme.callback_url == "https://ops.example/es2"
    assert x509.load_pem_x509_certificate((acme.callback_ca or "").encode()).subject == _name("operator test CA")
    args = build_parser().parse_args(["operator", "callback", "acme", "--clear", *common])  # clears both
    assert await args.handler(args) == 0
    async with db.transaction() as session:
        acme = await operator_by_name(session, "acme")
    assert acme is not None and acme.callback_url is None and acme.callback_ca is None
    args = build_parser().parse_args(["operator", "callback", "acme", "http://ops.example/", *common])
    with pytest.raises(CliError, match="loopback"):
        await args.handler(args)


# --- one operator's endpoint doesn't hold up another's ----------------------------------------------------


async def test_a_hanging_operator_delays_only_itself(db: Database) -> None:
    async with AsyncExitStack() as stack:
        hanging = await start(stack, Endpoint(hang=True))
        fast = await start(stack, Endpoint())
        await add_operator(db, "hanging", hanging.url)
        await add_operator(db, "fast", fast.url)
        await queue(db, "hanging", 3)
        first = await queue(db, "fast", 3)
        async with delivering(Outbox(db, poll=0.02)):  # the default 10 s request timeout
            loop = asyncio.get_running_loop()
            began = loop.time()
            await wait_for(lambda: len(fast.received) == 3, timeout=5)
            assert loop.time() - began < 3
            assert fast.received == first  # in order
            later = await queue(db, "fast", 2)  # keeps flowing while the other endpoint still hangs
            await wait_for(lambda: len(fast.received) == 5, timeout=5)
            assert fast.received == first + later
            assert hanging.requests == 1 and not hanging.released.is_set()  # still on its first event
        assert [e.delivered_at is None for e in await events(db, "hanging")] == [True, True, True]


async def test_two_outboxes_deliver_each_event_once_in_order(db: Database, database_url: str) -> None:
    """Two servers on one database: the lease makes each event go out once, and in order."""
    other = Database(database_url)
    try:
        async with AsyncExitStack() as stack:
            endpoint = await start(stack, Endpoint())
            await add_operator(db, "acme", endpoint.url)
            queued = await queue(db, "acme", 15)
            async with delivering(Outbox(db, poll=0.01)), delivering(Outbox(other, poll=0.01)):
                await wait_for(lambda: len(endpoint.received) >= 15)
                await asyncio.sleep(0.2)
            assert endpoint.received == queued
    finally:
        await other.dispose()


async def test_stopping_the_outbox_mid_transaction_leaves_the_database_usable(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Server shutdown cancels the outbox at any point, also inside a transaction: each database step still
    ends properly (no connection left mid-transaction, SQLite's write lock not held)."""
    import random

    caplog.set_level(logging.ERROR)
    async with AsyncExitStack() as stack:
        endpoints = [await start(stack, Endpoint()) for _ in range(3)]
        for n, endpoint in enumerate(endpoints):
            await add_operator(db, f"op{n}", endpoint.url)
        for round_ in range(80):
            if round_ % 8 == 0:
                for n in range(3):
                    await queue(db, f"op{n}", 4)
            async with delivering(Outbox(db, poll=0.001)):
                await asyncio.sleep(random.uniform(0, 0.02))
            await asyncio.wait_for(events(db), 5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- dead letters ----------------------------------------------------------------------------------------


async def test_dead_letters_after_the_limit_listed_and_retried(
    db: Database, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()  # only serve and pki init create a data directory
    common = ["--data-dir", str(tmp_path / "data"), "--database-url", database_url]

    async def cli(*argv: str) -> Any:
        args = build_parser().parse_args([*argv, *common])
        assert await args.handler(args) == 0
        return json.loads(capsys.readouterr().out) if "--json" in argv else capsys.readouterr().out

    async with AsyncExitStack() as stack:
        endpoint = await start(stack, Endpoint(status=503))
        await add_operator(db, "acme", endpoint.url)
        await add_operator(db, "quiet")
        first, second = await queue(db, "acme", 2)
        await queue(db, "quiet", 1)  # no callback URL: stays pending, never attempted
        outbox = Outbox(db, poll=0.01, max_attempts=3, backoff=lambda _attempts: timedelta(0))
        async with delivering(outbox):
            async def all_dead() -> bool:
                return all(e.dead_at is not None for e in await events(db, "acme"))

            await wait_for(all_dead)
            await asyncio.sleep(0.1)
        assert endpoint.requests == 6  # three attempts each, then no more
        dead = await events(db, "acme")
        assert [(e.event_id, e.attempts, e.last_error, event_state(e)) for e in dead] == [
            (first, 3, "HTTP 503", "dead"), (second, 3, "HTTP 503", "dead")]

        listed = await cli("outbox", "list", "--state", "dead", "--json")
        assert [(r["eventId"], r["operator"], r["state"], r["attempts"], r["lastError"]) for r in listed] == [
            (first, "acme", "dead", 3, "HTTP 503"), (second, "acme", "dead", 3, "HTTP 503")]
        assert [r["operator"] for r in await cli("outbox", "list", "--state", "pending", "--json")] == ["quiet"]
        assert len(await cli("outbox", "list", "--operator", "acme", "--json")) == 2
        assert "dead" in await cli("outbox", "list", "--operator", "acme")
        with pytest.raises(CliError, match="no operator"):
            await cli("outbox", "list", "--operator", "nobody")

        await cli("outbox", "retry", str(dead[1].id))
        await cli("outbox", "retry", first)  # by eventId too
        with pytest.raises(CliError, match="not dead"):
            await cli("outbox", "retry", str(dead[0].id))
        with pytest.raises(CliError, match="no outbox event"):
            await cli("outbox", "retry", "999999")
        retried = await events(db, "acme")
        assert [(event_state(e), e.attempts, e.retried_at is not None) for e in retried] == [("pending", 0, True)] * 2

        endpoint.status = 204
        async with delivering(Outbox(db, poll=0.01, max_attempts=3, backoff=lambda _attempts: timedelta(0))):
            async def all_delivered() -> bool:
                return all(e.delivered_at is not None for e in await events(db, "acme"))

            await wait_for(all_delivered)
        assert endpoint.received == [first, second]  # the operator's order, whatever the order of the retries
        delivered = await cli("outbox", "list", "--operator", "acme", "--state", "delivered", "--json")
        assert [r["state"] for r in delivered] == ["delivered"] * 2


async def test_an_old_event_dies_after_its_next_failed_attempt(db: Database) -> None:
    async with AsyncExitStack() as stack:
        endpoint = await start(stack, Endpoint(status=500))
        await add_operator(db, "acme", endpoint.url)
        (old,) = await queue(db, "acme", 1)
        async with db.transaction() as session:
            event = (await session.exec(select(OutboxEvent).where(OutboxEvent.event_id == old))).one()
            event.created_at = datetime.now(UTC) - timedelta(hours=25)
            session.add(event)
        async with delivering(Outbox(db, poll=0.01)):
            async def dead() -> bool:
                return (await events(db))[0].dead_at is not None

            await wait_for(dead)
        assert endpoint.requests == 1 and (await events(db))[0].attempts == 1


# --- logging during a database outage --------------------------------------------------------------------


class FlakyDatabase:
    """A database stub: every transaction fails (as during an outage) until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.calls += 1
        if not self.up:
            raise OSError(111, "Connection refused")
        yield self

    async def exec(self, _query: Any) -> Any:
        class Empty:
            def all(self) -> list[Any]:
                return []

        return Empty()


async def test_a_database_outage_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    stub = FlakyDatabase()
    outbox = Outbox(stub, poll=0.001)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="smdp.services.outbox")

    def records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "smdp.services.outbox"]

    async with delivering(outbox):
        await wait_for(lambda: stub.calls >= 30)
    failures = stub.calls
    assert len(records()) == 1
    assert records()[0].exc_info is not None and "Connection refused" in str(records()[0].exc_info[1])
    # every failure the loop handled but the first was suppressed; the stub also counts the one attempt that was
    # in flight when delivering() cancelled the loop (shielded, it finished after the cancellation), if any
    suppressed = outbox.throttle.suppressed
    assert suppressed + 1 in (failures, failures - 1)

    stub.up = True
    async with delivering(outbox):
        await wait_for(lambda: len(records()) == 2)
    summary = records()[1].getMessage()
    assert f"{suppressed} more times" in summary and "recovered" in summary and "Connection refused" in summary
    assert records()[1].exc_info is None


def test_log_throttle_once_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("tests.logthrottle")
    throttle = LogThrottle(logger, interval=60.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="tests.logthrottle")
    for _ in range(10):
        now[0] += 1
        throttle.failure("loop failed", RuntimeError("db down"))
    assert [r.exc_info is not None for r in caplog.records] == [True]
    now[0] += 60
    assert throttle.failure("loop failed", RuntimeError("db down"))  # the interval passed: one line with the count
    assert "10 times" in caplog.records[1].getMessage() and caplog.records[1].exc_info is None
    throttle.failure("loop failed", KeyError("other"))  # another error is new: logged at once, with its trace
    assert len(caplog.records) == 3 and caplog.records[2].exc_info is not None
    throttle.failure("loop failed", RuntimeError("db down"))
    throttle.success()
    assert "1 more times" in caplog.records[-2].getMessage() or "1 more times" in caplog.records[-1].getMessage()
    assert throttle.suppressed == 0


# --- tokens --------------------------------------------------------------------------------------------


def test_tokens_are_prefixed_url_safe_and_never_start_with_a_dash() -> None:
    tokens = [new_token() for _ in range(1000)]
    assert len(set(tokens)) == 1000
    for token in tokens:
        assert token.startswith("smdp_") and re.fullmatch(r"smdp_[A-Za-z0-9_-]+", token), token
        assert token[len("smdp_")] != "-" and len(token) >= len("smdp_") + 43


async def test_operator_tokens_have_the_new_format(db: Database) -> None:
    token = await add_operator(db, "acme")
    assert re.fullmatch(r"smdp_[A-Za-z0-9][A-Za-z0-9_-]+", token)
    async with db.transaction() as session:
        acme = (await session.exec(select(Operator).where(Operator.name == "acme"))).one()
    import hashlib

    assert acme.token_sha256 == hashlib.sha256(token.encode()).hexdigest()


async def test_cli_takes_the_token_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from smdp.cli.order import client_from_args

    def parse(*extra: str) -> Any:
        return build_parser().parse_args(
            ["order", "release", "8999", "--url", "https://127.0.0.1:1", "--operator", "acme", "--insecure",
             "--data-dir", str(tmp_path / "data"), *extra]
        )

    async def token_of(*extra: str) -> str:
        async with client_from_args(parse(*extra)) as client:
            return client.token

    monkeypatch.delenv("SMDP_TOKEN", raising=False)
    token_file = tmp_path / "acme.token"
    token_file.write_text("smdp_fromFile123\n")
    assert await token_of("--token-file", str(token_file)) == "smdp_fromFile123"
    monkeypatch.setenv("SMDP_TOKEN", "smdp_fromEnv456")
    assert await token_of() == "smdp_fromEnv456"
    assert await token_of("--token-file", str(token_file)) == "smdp_fromFile123"  # explicit beats the environment
    assert await token_of("--token", "smdp_given789") == "smdp_given789"
    with pytest.raises(SystemExit):  # argparse: not both
        parse("--token", "x", "--token-file", str(token_file))
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(CliError, match="empty"):
        client_from_args(parse("--token-file", str(empty)))
    with pytest.raises(CliError, match="cannot read"):
        client_from_args(parse("--token-file", str(tmp_path / "missing.token")))
    token_file.write_text("smdp_caf\u00e9\n")
    with pytest.raises(ValueError, match="characters"):  # refused before anything is sent
        client_from_args(parse("--token-file", str(token_file)))
    monkeypatch.delenv("SMDP_TOKEN")
    with pytest.raises(CliError, match="SMDP_TOKEN"):  # nothing given and no local token file
        client_from_args(parse())
