"""Delivery of queued progress events to operators, with retries and backoff, surviving restarts.

Each event is claimed with a lease (an atomic update of its next attempt time), sent outside any
transaction, then marked delivered; a crash between sending and marking sends it again with the same
functionCallIdentifier, so operators can de-duplicate.  Events of one operator are delivered in order:
a later event waits while an earlier one is failing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import aiohttp
from sqlalchemy import func, update
from sqlmodel import select

from smdp.store.db import Database
from smdp.store.orders import Operator, OutboxEvent

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(minutes=5)
PATH = "/gsma/rsp2/es2plus/handleDownloadProgressInfo"


def backoff(attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=2 ** min(attempts, 10)))


class Outbox:
    def __init__(self, db: Database, *, timeout: float = 10.0, poll: float = 0.5) -> None:
        self.db = db
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.poll = poll
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever (until cancelled)."""
        async with aiohttp.ClientSession(timeout=self.timeout) as http:
            while True:
                try:
                    sent = await self.deliver_due(http)
                except Exception:  # a database hiccup must not stop deliveries for good
                    log.exception("outbox: delivery round failed")
                    sent = 0
                if not sent:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll)
                    except asyncio.TimeoutError:
                        pass

    async def deliver_due(self, http: aiohttp.ClientSession) -> int:
        """One round: the oldest undelivered event of each operator, if due. Returns how many were sent."""
        now = datetime.now(timezone.utc)
        async with self.db.transaction() as db:
            heads = select(func.min(OutboxEvent.id)).where(OutboxEvent.delivered_at.is_(None)).group_by(OutboxEvent.operator_id)  # type: ignore[union-attr]
            rows = (
                await db.exec(
                    select(OutboxEvent, Operator.callback_url)
                    .join(Operator, Operator.id == OutboxEvent.operator_id)  # type: ignore[arg-type]
                    .where(OutboxEvent.id.in_(heads), OutboxEvent.next_attempt_at <= now)  # type: ignore[union-attr]
                )
            ).all()
        sent = 0
        for event, url in rows:
            if url and await self._claim(event, now):
                sent += await self._send(http, event, url)
        return sent

    async def _claim(self, event: OutboxEvent, now: datetime) -> bool:
        async with self.db.transaction() as db:
            result = await db.exec(
                update(OutboxEvent)
                .where(OutboxEvent.id == event.id, OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at <= now)  # type: ignore[arg-type, union-attr]
                .values(next_attempt_at=now + LEASE)
            )
            return bool(result.rowcount)

    async def _send(self, http: aiohttp.ClientSession, event: OutboxEvent, url: str) -> int:
        headers = {"X-Admin-Protocol": "gsma/rsp/v2.2.0", "Content-Type": "application/json"}
        error = None
        try:
            async with http.post(url.rstrip("/") + PATH, json=event.payload, headers=headers, ssl=False) as response:
                await response.read()
                if response.status // 100 != 2:
                    error = f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = datetime.now(timezone.utc)
        values: dict = {"attempts": OutboxEvent.attempts + 1}
        if error is None:
            values["delivered_at"] = now
        else:
            values.update(next_attempt_at=now + backoff(event.attempts), last_error=error[:500])
            log.info("outbox: event %s to %s failed (%s); retrying", event.event_id, url, error)
        async with self.db.transaction() as db:
            await db.exec(update(OutboxEvent).where(OutboxEvent.id == event.id).values(**values))  # type: ignore[arg-type]
        return 1 if error is None else 0
