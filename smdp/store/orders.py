"""Operators and the callback outbox (ES2+, SGP.22 section 5.3), with their repository functions.

Operators authenticate with API tokens; only a SHA-256 of each token is stored.  Download progress
events for operators are written to the outbox in the same transaction as the state change that
caused them (a transactional outbox), and delivered by :mod:`smdp.services.outbox` with retries.

An event is *pending* (``delivered_at`` and ``dead_at`` unset), *delivered*, or *dead* (given up after the
retry limit; ``smdp outbox retry`` makes it pending again).  Schema changes reach existing databases through
the migrations (smdp.store.migrations, ``smdp db upgrade``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text, update
from sqlmodel import JSON, Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import utcnow


class Operator(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)  # the ES2+ functionRequesterIdentifier
    token_sha256: str = Field(index=True, unique=True, max_length=64)
    callback_url: str | None = Field(default=None, max_length=1024)  # base URL of its ES2+ endpoint
    # PEM CA certificate(s) trusted for the callback endpoint, besides the system trust store
    callback_ca: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True, unique=True, max_length=36)  # sent as functionCallIdentifier
    operator_id: int = Field(foreign_key="operator.id", index=True)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = Field(default=None, index=True)
    last_error: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    dead_at: datetime | None = Field(default=None, index=True)  # given up: no more attempts until retried
    retried_at: datetime | None = Field(default=None)  # last manual retry (restarts the age limit)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def operator_by_token(db: AsyncSession, token: str) -> Operator | None:
    return (await db.exec(select(Operator).where(Operator.token_sha256 == token_digest(token)))).first()


async def operator_by_name(db: AsyncSession, name: str) -> Operator | None:
    return (await db.exec(select(Operator).where(Operator.name == name))).first()


async def operator_by_id(db: AsyncSession, operator_id: int) -> Operator | None:
    return (await db.exec(select(Operator).where(Operator.id == operator_id))).first()


async def due_events(db: AsyncSession, now: datetime, limit: int) -> list[OutboxEvent]:
    """Undelivered events whose time has come, oldest first, locked for this worker (SKIP LOCKED)."""
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at <= now)  # type: ignore[union-attr]
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await db.exec(query)).all())


async def events_for(db: AsyncSession, operator_id: int) -> list[OutboxEvent]:
    return list((await db.exec(select(OutboxEvent).where(OutboxEvent.operator_id == operator_id).order_by(OutboxEvent.id))).all())


# --- outbox states and administration (``smdp outbox``) ------------------------------------------------

EVENT_STATES = ("pending", "delivered", "dead")


def event_state(event: OutboxEvent) -> str:
    if event.delivered_at is not None:
        return "delivered"
    return "dead" if event.dead_at is not None else "pending"


def _state_filter(state: str) -> Any:
    if state == "delivered":
        return col(OutboxEvent.delivered_at).is_not(None)
    if state == "dead":
        return col(OutboxEvent.delivered_at).is_(None) & col(OutboxEvent.dead_at).is_not(None)
    if state == "pending":
        return col(OutboxEvent.delivered_at).is_(None) & col(OutboxEvent.dead_at).is_(None)
    raise ValueError(f"unknown outbox state {state!r} (one of {', '.join(EVENT_STATES)})")


async def list_events(
    db: AsyncSession, *, operator_id: int | None = None, state: str | None = None, limit: int = 100
) -> list[tuple[OutboxEvent, str]]:
    """The newest ``limit`` events (with their operator's name), oldest first."""
    query = select(OutboxEvent, Operator.name).join(Operator, col(Operator.id) == col(OutboxEvent.operator_id))
    if operator_id is not None:
        query = query.where(OutboxEvent.operator_id == operator_id)
    if state is not None:
        query = query.where(_state_filter(state))
    rows = (await db.exec(query.order_by(col(OutboxEvent.id).desc()).limit(limit))).all()
    return [(event, name) for event, name in reversed(rows)]


async def event_by_ref(db: AsyncSession, ref: str) -> OutboxEvent | None:
    """An event by its numeric id or its event_id (the functionCallIdentifier)."""
    where = OutboxEvent.id == int(ref) if ref.isdigit() else OutboxEvent.event_id == ref
    return (await db.exec(select(OutboxEvent).where(where))).first()


async def retry_event(db: AsyncSession, event_id: int, now: datetime) -> bool:
    """A dead event becomes pending again, due now, with a fresh attempt budget.  False if it isn't dead."""
    result = await db.exec(
        update(OutboxEvent)
        .where(col(OutboxEvent.id) == event_id, col(OutboxEvent.dead_at).is_not(None), col(OutboxEvent.delivered_at).is_(None))
        .values(dead_at=None, attempts=0, next_attempt_at=now, retried_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
