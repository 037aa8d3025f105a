"""Queries on the callback outbox (progress events for operators, ES2+.HandleDownloadProgressInfo).

An event is *pending* (``delivered_at`` and ``dead_at`` unset), *delivered*, or *dead* (given up after the
retry limit; ``smdp outbox retry`` makes it pending again).  Events are queued by :mod:`smdp.services.events`
in the transaction of the change that caused them; the sender (:mod:`smdp.services.outbox`) finds each
operator's oldest pending event (:func:`due_heads`), leases it (:func:`claim_event`), sends it outside any
transaction and records the attempt (:func:`record_attempt`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import Operator, OutboxEvent

EVENT_STATES = ("pending", "delivered", "dead")

# an operator's oldest pending event, with the operator's callback URL and CA certificate(s)
Head = tuple[OutboxEvent, str | None, str | None]


async def add_event(db: AsyncSession, event: OutboxEvent) -> None:
    """Queue ``event`` in the caller's transaction (it exists exactly when that transaction commits)."""
    db.add(event)
    await db.flush()


# --- the sender ----------------------------------------------------------------------------------------


def _pending() -> Any:
    return col(OutboxEvent.delivered_at).is_(None) & col(OutboxEvent.dead_at).is_(None)


def _heads(now: datetime, operator_id: int | None = None) -> Any:
    """The oldest pending event of each operator (or of one), if due, with the operator's callback."""
    pending = _pending()
    if operator_id is not None:
        pending = pending & (col(OutboxEvent.operator_id) == operator_id)
    heads = select(func.min(OutboxEvent.id)).where(pending).group_by(col(OutboxEvent.operator_id))
    return (
        select(OutboxEvent, Operator.callback_url, Operator.callback_ca)
        .join(Operator, col(Operator.id) == col(OutboxEvent.operator_id))
        .where(col(OutboxEvent.id).in_(heads), col(OutboxEvent.next_attempt_at) <= now)
    )


async def due_heads(db: AsyncSession, now: datetime) -> list[Head]:
    """Every operator's oldest pending event that is due at ``now`` (one query); a later event of an operator
    waits behind an earlier one, so an operator's events go out in order."""
    return list((await db.exec(_heads(now))).all())


async def due_head(db: AsyncSession, operator_id: int, now: datetime) -> Head | None:
    """Operator ``operator_id``'s oldest pending event, if it is due at ``now``."""
    return (await db.exec(_heads(now, operator_id))).first()


async def claim_event(db: AsyncSession, event_id: int | None, now: datetime, until: datetime) -> bool:
    """Lease a pending, due event until ``until`` (one atomic UPDATE of its next attempt time): False if it
    was delivered, given up or claimed by another sender meanwhile."""
    result = await db.exec(
        update(OutboxEvent)
        .where(
            col(OutboxEvent.id) == event_id,
            col(OutboxEvent.delivered_at).is_(None),
            col(OutboxEvent.dead_at).is_(None),
            col(OutboxEvent.next_attempt_at) <= now,
        )
        .values(next_attempt_at=until)
    )
    return bool(result.rowcount)


async def record_attempt(db: AsyncSession, event_id: int | None, values: dict[str, Any]) -> None:
    """Write the outcome of a delivery attempt (``values``: the columns to set) to the event."""
    await db.exec(update(OutboxEvent).where(col(OutboxEvent.id) == event_id).values(**values))


# --- states and administration (``smdp outbox``) -------------------------------------------------------


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
        return _pending()
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
    return bool(result.rowcount)
