"""Small repository functions over the tables: every query the services make lives here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import DownloadSession, Notification, Profile, utcnow


async def add_profile(db: AsyncSession, profile: Profile) -> Profile:
    db.add(profile)
    await db.flush()
    return profile


async def profile_by_iccid(db: AsyncSession, iccid: str, *, for_update: bool = False) -> Profile | None:
    query = select(Profile).where(Profile.iccid == iccid)
    if for_update:
        query = query.with_for_update()
    return (await db.exec(query)).first()


async def profile_by_id(db: AsyncSession, profile_id: int, *, for_update: bool = False) -> Profile | None:
    query = select(Profile).where(Profile.id == profile_id)
    if for_update:
        query = query.with_for_update()
    return (await db.exec(query)).first()


async def profile_by_matching_id(db: AsyncSession, matching_id: str, *, for_update: bool = False) -> Profile | None:
    query = select(Profile).where(Profile.matching_id == matching_id)
    if for_update:
        query = query.with_for_update()
    return (await db.exec(query)).first()


async def default_profile_for_eid(
    db: AsyncSession, eid: str, states: list[str], *, for_update: bool = False
) -> Profile | None:
    """The oldest order bound to ``eid`` without a matching ID (default SM-DP+ flow)."""
    query = (
        select(Profile)
        .where(Profile.eid == eid, Profile.matching_id.is_(None), Profile.state.in_(states))  # type: ignore[union-attr, attr-defined]
        .order_by(Profile.id)
        .limit(1)
    )
    if for_update:
        query = query.with_for_update(skip_locked=True)
    return (await db.exec(query)).first()


async def list_profiles(
    db: AsyncSession, *, operator_id: int | None = None, state: str | None = None, limit: int = 10_000
) -> list[Profile]:
    query = select(Profile).order_by(Profile.id).limit(limit)
    if operator_id is not None:
        query = query.where(Profile.operator_id == operator_id)
    if state is not None:
        query = query.where(Profile.state == state)
    return list((await db.exec(query)).all())


def touch(row: Profile | DownloadSession, now: datetime | None = None) -> None:
    row.updated_at = now or utcnow()


async def session_by_transaction_id(
    db: AsyncSession, transaction_id: str, *, for_update: bool = False
) -> DownloadSession | None:
    query = select(DownloadSession).where(DownloadSession.transaction_id == transaction_id)
    if for_update:
        query = query.with_for_update()
    return (await db.exec(query)).first()


async def save(db: AsyncSession, row: Profile | DownloadSession | Notification) -> None:
    db.add(row)
    await db.flush()


async def notification_recorded(db: AsyncSession, digest: str) -> bool:
    return (await db.exec(select(Notification.id).where(Notification.digest == digest))).first() is not None


async def record_notification(db: AsyncSession, notification: Notification) -> bool:
    """Store a notification once (one INSERT ... ON CONFLICT DO NOTHING on its digest); False if the
    same signed notification was recorded before, by this or a concurrent delivery."""
    insert = postgresql.insert if db.bind.dialect.name == "postgresql" else sqlite.insert
    values = notification.model_dump(exclude={"id"})
    result = await db.exec(insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["digest"]))  # type: ignore[call-overload]
    return bool(result.rowcount)


async def notifications(db: AsyncSession, *, eid: str | None = None) -> list[Notification]:
    query = select(Notification).order_by(Notification.id)
    if eid:
        query = query.where(Notification.eid == eid)
    return list((await db.exec(query)).all())


async def session_count_by_step(db: AsyncSession) -> dict[str, int]:
    rows = (await db.exec(select(DownloadSession.step))).all()
    counts: dict[str, int] = {}
    for step in rows:
        counts[step] = counts.get(step, 0) + 1
    return counts
