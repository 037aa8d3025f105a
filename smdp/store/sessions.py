"""Queries on ES9+ download sessions and the notifications recorded for them.

Each function runs on the caller's session, inside the caller's transaction: an ES9+ call is one
transaction (see :mod:`smdp.services.download`), so these functions add no round trips of their own beyond
the statement each one names.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import DownloadSession, Notification

# --- download sessions ---------------------------------------------------------------------------------


async def session_by_transaction_id(
    db: AsyncSession, transaction_id: str, *, for_update: bool = False
) -> DownloadSession | None:
    query = select(DownloadSession).where(DownloadSession.transaction_id == transaction_id)
    if for_update:
        query = query.with_for_update()
    return (await db.exec(query)).first()


async def save(db: AsyncSession, row: DownloadSession) -> None:
    """Insert ``row`` or write its changes now (not at commit)."""
    db.add(row)
    await db.flush()


async def expire_sessions(
    db: AsyncSession, open_steps: list[str], now: datetime, *, step: str, status_code: str
) -> int:
    """Sessions in one of ``open_steps`` whose time ran out before ``now`` move to ``step`` with
    ``status_code`` (one UPDATE); returns how many."""
    result = await db.exec(
        update(DownloadSession)
        .where(col(DownloadSession.step).in_(open_steps), col(DownloadSession.expires_at) < now)
        .values(step=step, status_code=status_code, updated_at=now)
    )
    return int(result.rowcount or 0)


async def delete_unauthenticated_sessions(db: AsyncSession, now: datetime) -> int:
    """Delete the sessions that never authenticated (no eUICC certificate) and expired before ``now``."""
    result = await db.exec(
        delete(DownloadSession).where(col(DownloadSession.euicc_certificate).is_(None), col(DownloadSession.expires_at) < now)
    )
    return int(result.rowcount or 0)


async def delete_ended_sessions(db: AsyncSession, ended_steps: list[str], before: datetime) -> int:
    """Delete the sessions in one of ``ended_steps`` last changed before ``before``."""
    result = await db.exec(
        delete(DownloadSession).where(col(DownloadSession.step).in_(ended_steps), col(DownloadSession.updated_at) < before)
    )
    return int(result.rowcount or 0)


async def delete_sessions_of_profile(db: AsyncSession, profile_id: int) -> int:
    """Delete every download session that authenticated for profile ``profile_id``; returns how many."""
    result = await db.exec(delete(DownloadSession).where(col(DownloadSession.profile_id) == profile_id))
    return int(result.rowcount or 0)


# --- notifications -------------------------------------------------------------------------------------


async def notification_recorded(db: AsyncSession, digest: str) -> bool:
    return (await db.exec(select(Notification.id).where(Notification.digest == digest))).first() is not None


async def record_notification(db: AsyncSession, notification: Notification) -> bool:
    """Store a notification once (one INSERT ... ON CONFLICT DO NOTHING on its digest); False if the
    same signed notification was recorded before, by this or a concurrent delivery."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = notification.model_dump(exclude={"id"})
    result = await db.exec(insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["digest"]))
    return bool(result.rowcount)


async def delete_notifications_of_profile(db: AsyncSession, profile_id: int, iccid: str) -> int:
    """Delete the notifications recorded for profile ``profile_id``: those naming its ICCID, and those of one
    of its download sessions (an installation result names the session; call this before deleting them).
    One statement; returns how many."""
    of_sessions = select(DownloadSession.transaction_id).where(col(DownloadSession.profile_id) == profile_id)
    result = await db.exec(
        delete(Notification).where(or_(col(Notification.iccid) == iccid, col(Notification.transaction_id).in_(of_sessions)))
    )
    return int(result.rowcount or 0)
