"""Delivery of queued progress events to operators, with retries and backoff, surviving restarts.

Each event is claimed with a lease (an atomic update of its next attempt time), sent outside any
transaction, then marked delivered; a crash between sending and marking sends it again with the same
functionCallIdentifier, so operators can de-duplicate.  Events of one operator are delivered in order:
a later event waits while an earlier one is failing.  Two servers sharing a database never send one
event at the same time (the lease, 60 s, is longer than the request timeout, 10 s).

Operators are independent: a dispatcher starts one sender task per operator that has a due event, and
that task delivers the operator's events one after the other, so an operator whose endpoint hangs
delays only its own events.

Retries back off exponentially (1 s, doubling, at most 5 minutes).  An event still failing after
``MAX_ATTEMPTS`` (50) attempts or ``MAX_AGE`` (24 hours) since it was queued (or last retried by hand),
whichever comes first, is *dead* (every event gets at least one attempt):
``dead_at`` is set, it is never attempted again, and the operator's later events go ahead.
``smdp outbox list --state dead`` shows such events and ``smdp outbox retry ID`` queues one again (as
the operator's oldest pending event it is then delivered before the later ones still pending).

Transport: https callback URLs are verified against the system trust store plus the operator's own CA
certificate(s) if configured (``smdp operator callback NAME URL --ca-file F``), host name included.
Plain http is accepted only for loopback hosts (localhost, 127.0.0.0/8, ::1: a local relay or a test
endpoint), as data sent there never leaves the machine.  Redirects are not followed: a 3xx answer is a
failed attempt like any other non-2xx status.

During a database outage the loop keeps retrying every ``poll`` seconds but logs the error once per
minute with a count (:class:`smdp.services.logthrottle.LogThrottle`).  Stopping the outbox (cancelling
:meth:`Outbox.run`) lets a database step in progress finish first, so no connection is left mid-transaction.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp

from smdp.services.logthrottle import LogThrottle
from smdp.store import outbox as store
from smdp.store.db import Database
from smdp.store.tables import OutboxEvent
from smdp.web.client import JsonCallError, JsonClient, system_ssl_context

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(minutes=5)
MAX_ATTEMPTS = 50  # about 3.5 hours of retries with the backoff below
MAX_AGE = timedelta(hours=24)
FUNCTION = "handleDownloadProgressInfo"
PATH = "/gsma/rsp2/es2plus/" + FUNCTION
T = TypeVar("T")


class CallbackConfigError(ValueError):
    """A callback URL or CA certificate that smdp won't use; the message says why."""


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback_url(url: str) -> str:
    """``url`` if it is an https URL, or an http URL of a loopback host; else CallbackConfigError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise CallbackConfigError(f"bad callback URL {url!r}: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CallbackConfigError(f"a callback URL is https://host[:port][/path], not {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise CallbackConfigError(f"plain http callbacks only go to loopback hosts; use https for {parts.hostname}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise CallbackConfigError("a callback URL has no credentials, query or fragment")
    return url


def check_ca_pem(pem: str) -> str:
    """The PEM CA certificate(s) ``pem`` (normalised), or CallbackConfigError if there is none or it is malformed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise CallbackConfigError(f"not PEM certificates: {exc}") from None
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def callback_ssl_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """System trust store plus ``ca_pem``; certificate and host name verified (TLS 1.2 or later)."""
    return system_ssl_context(ca_pem)


async def _complete(step: Awaitable[T]) -> T:
    """Run a database step to its end even if the caller is cancelled meanwhile, then pass the cancellation
    on: a transaction cut short by a cancellation (at server shutdown, say) can leave its connection checked
    out mid-transaction, and with SQLite the write lock held for everyone else."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])  # bounded by the database's own timeouts
        if not task.cancelled():
            task.exception()  # retrieved: it is reported by whoever handles the cancellation, not as a stray
        raise


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=2 ** min(attempts, 10)))


class Outbox:
    def __init__(
        self,
        db: Database,
        *,
        timeout: float = 10.0,
        poll: float = 0.5,
        max_attempts: int = MAX_ATTEMPTS,
        max_age: timedelta = MAX_AGE,
        backoff: Callable[[int], timedelta] = backoff,
        log_interval: float = 60.0,
    ) -> None:
        if timedelta(seconds=timeout) >= LEASE:
            raise ValueError("the request timeout must be shorter than the claim lease")
        self.db = db
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.poll = poll
        self.max_attempts, self.max_age, self.backoff = max_attempts, max_age, backoff
        self.throttle = LogThrottle(log, log_interval)  # the dispatcher's database errors
        self.sender_throttle = LogThrottle(log, log_interval)  # the senders' database errors
        self._senders: dict[int, asyncio.Task[None]] = {}
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    async def run(self) -> None:
        """Deliver forever (until cancelled)."""
        # no connection limit: each operator has at most one request in flight (its sender's), and a shared
        # limit would let hanging endpoints hold up the others again
        async with JsonClient(timeout=self.timeout, connection_limit=0) as http:
            try:
                while True:
                    await self.dispatch(http)
                    await asyncio.sleep(self.poll)
            finally:
                await self.stop_senders()

    async def stop_senders(self) -> None:
        senders = list(self._senders.values())
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        self._senders.clear()

    async def dispatch(self, http: JsonClient) -> int:
        """One round: a sender task for each operator whose oldest pending event is due and that has none
        running.  Returns how many were started.  Database errors are logged (throttled), not raised."""
        try:
            operators = await _complete(self._due_operators(datetime.now(UTC)))
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop deliveries for good
            self.throttle.failure("outbox: delivery round failed", exc)
            return 0
        self.throttle.success()
        started = 0
        for operator_id in operators:
            running = self._senders.get(operator_id)
            if running is None or running.done():
                task = self._senders[operator_id] = asyncio.create_task(self._sender(http, operator_id))
                task.add_done_callback(functools.partial(self._forget, operator_id))
                started += 1
        return started

    def _forget(self, operator_id: int, task: asyncio.Task[None]) -> None:
        if self._senders.get(operator_id) is task:
            del self._senders[operator_id]

    async def _due_operators(self, now: datetime) -> list[int]:
        async with self.db.transaction() as db:
            rows = await store.due_heads(db, now)
        return [event.operator_id for event, url, _ca in rows if url]

    async def _sender(self, http: JsonClient, operator_id: int) -> None:
        """Deliver one operator's due events in order; stop at the first failure (it is retried later)."""
        try:
            while True:
                now = datetime.now(UTC)
                head = await _complete(self._head(operator_id, now))
                if head is None:
                    return
                event, url, ca = head
                if not url or not await _complete(self._claim(event, now)):
                    return
                outcome = await self._send(http, event, url, ca)
                self.sender_throttle.success()
                if outcome == "failed":
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database: the lease runs out and the event is tried again
            self.sender_throttle.failure("outbox: delivery failed", exc)

    async def _head(self, operator_id: int, now: datetime) -> tuple[OutboxEvent, str | None, str | None] | None:
        async with self.db.transaction() as db:
            return await store.due_head(db, operator_id, now)

    async def _claim(self, event: OutboxEvent, now: datetime) -> bool:
        async with self.db.transaction() as db:
            return await store.claim_event(db, event.id, now, now + LEASE)

    def _ssl_context(self, ca_pem: str | None) -> ssl.SSLContext:
        context = self._contexts.get(ca_pem)
        if context is None:
            if len(self._contexts) > 256:
                self._contexts.clear()
            context = self._contexts[ca_pem] = callback_ssl_context(ca_pem)
        return context

    async def _post(self, http: JsonClient, event: OutboxEvent, url: str, ca_pem: str | None) -> str | None:
        """One attempt; the error, or None if the operator accepted the event: any 2xx answer but one whose
        functionExecutionStatus is Failed (HandleDownloadProgressInfo has no output data, so receivers
        answer 204, 200 with a header, or just 200)."""
        try:
            check_callback_url(url)
            context = self._ssl_context(ca_pem) if urlsplit(url).scheme == "https" else None
        except (CallbackConfigError, ssl.SSLError) as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            await http.post(url.rstrip("/") + PATH, FUNCTION, event.payload, ssl_context=context, lenient=True)
        except JsonCallError as exc:
            return exc.detail
        return None

    async def _send(self, http: JsonClient, event: OutboxEvent, url: str, ca_pem: str | None) -> str:
        """Attempt delivery and record the outcome: "delivered", "failed" (retried later) or "dead"."""
        error = await self._post(http, event, url, ca_pem)
        now = datetime.now(UTC)
        values: dict = {"attempts": OutboxEvent.attempts + 1}
        if error is None:
            values["delivered_at"] = now
            outcome = "delivered"
        else:
            attempts = event.attempts + 1
            since = _aware(event.retried_at or event.created_at)
            values["last_error"] = error[:500]
            if attempts >= self.max_attempts or now - since >= self.max_age:
                values["dead_at"] = now
                outcome = "dead"
                log.warning("outbox: event %s (id %s) to %s given up after %d attempts: %s", event.event_id, event.id, url, attempts, error)
            else:
                values["next_attempt_at"] = now + self.backoff(event.attempts)
                outcome = "failed"
                log.info("outbox: event %s to %s failed (%s); retrying", event.event_id, url, error)
        await _complete(self._record(event, values))
        return outcome

    async def _record(self, event: OutboxEvent, values: dict) -> None:
        async with self.db.transaction() as db:
            await store.record_attempt(db, event.id, values)
