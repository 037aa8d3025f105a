"""Operators and the callback outbox (ES2+, SGP.22 section 5.3), with their repository functions.

Operators authenticate with API tokens; only a SHA-256 of each token is stored.  Download progress
events for operators are written to the outbox in the same transaction as the state change that
caused them (a transactional outbox), and delivered by :mod:`smdp.services.outbox` with retries.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Column
from sqlmodel import JSON, Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import utcnow


class Operator(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)  # the ES2+ functionRequesterIdentifier
    token_sha256: str = Field(index=True, unique=True, max_length=64)
    callback_url: str | None = Field(default=None, max_length=1024)  # base URL of its ES2+ endpoint
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
