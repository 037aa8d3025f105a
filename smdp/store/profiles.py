"""Queries on profiles and profile types.

Each function runs on the caller's session, inside the caller's transaction (``Database.transaction()``):
the services decide where a unit of work begins and ends, these functions only say what to read or write.
``for_update`` takes the row lock on PostgreSQL (``SELECT ... FOR UPDATE``); SQLite has one writer anyway.
"""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import Profile, ProfileType

# --- profiles ------------------------------------------------------------------------------------------


async def add_profile(db: AsyncSession, profile: Profile) -> Profile:
    db.add(profile)
    await db.flush()
    return profile


async def add_profiles(db: AsyncSession, profiles: list[Profile]) -> None:
    """Insert ``profiles`` in one flush (IntegrityError if an ICCID or a matching ID is taken)."""
    db.add_all(profiles)
    await db.flush()


async def save(db: AsyncSession, profile: Profile) -> None:
    """Write the changes made to ``profile`` now (not at commit), so a conflict surfaces here."""
    db.add(profile)
    await db.flush()


async def delete_profiles(db: AsyncSession, iccids: list[str]) -> None:
    """Delete the profiles with these ICCIDs (one statement: callers keep the list to a batch)."""
    await db.exec(delete(Profile).where(col(Profile.iccid).in_(iccids)))


async def delete_profile(db: AsyncSession, profile: Profile) -> None:
    """Delete ``profile``'s row (its download sessions first: they reference it, see sessions.py)."""
    await db.exec(delete(Profile).where(col(Profile.id) == profile.id))


async def profile_by_iccid(db: AsyncSession, iccid: str, *, for_update: bool = False) -> Profile | None:
    query = select(Profile).where(Profile.iccid == iccid)
    if for_update:
        query = query.with_for_update()
    return (await db.exec(query)).first()


async def operator_profile_by_iccid(
    db: AsyncSession, operator_id: int | None, iccid: str, *, for_update: bool = False
) -> Profile | None:
    """Profile ``iccid`` if operator ``operator_id`` owns it: to an operator, another's ICCID is unknown."""
    query = select(Profile).where(Profile.iccid == iccid, Profile.operator_id == operator_id)
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
    """The oldest order bound to ``eid`` without a matching ID (default SM-DP+ flow).  Locked with SKIP LOCKED:
    a row another download holds is passed over rather than waited for."""
    query = (
        select(Profile)
        .where(Profile.eid == eid, Profile.matching_id.is_(None), Profile.state.in_(states))  # type: ignore[union-attr, attr-defined]
        .order_by(col(Profile.id))
        .limit(1)
    )
    if for_update:
        query = query.with_for_update(skip_locked=True)
    return (await db.exec(query)).first()


async def first_profile_of_type(
    db: AsyncSession, operator_id: int | None, profile_type: str, state: str
) -> Profile | None:
    """The operator's oldest profile of ``profile_type`` in ``state``, locked with SKIP LOCKED, so that
    concurrent orders of one type each take a different profile instead of queueing on the same row."""
    query = (
        select(Profile)
        .where(Profile.operator_id == operator_id, Profile.profile_type == profile_type, Profile.state == state)
        .order_by(col(Profile.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return (await db.exec(query)).first()


async def has_profile_of_type(db: AsyncSession, operator_id: int | None, profile_type: str) -> bool:
    """Whether the operator has any profile of ``profile_type``, in any state (no lock)."""
    query = select(Profile.id).where(Profile.operator_id == operator_id, Profile.profile_type == profile_type).limit(1)
    return (await db.exec(query)).first() is not None


async def list_profiles(
    db: AsyncSession, *, operator_id: int | None = None, state: str | None = None, limit: int = 10_000
) -> list[Profile]:
    query = select(Profile).order_by(col(Profile.id)).limit(limit)
    if operator_id is not None:
        query = query.where(Profile.operator_id == operator_id)
    if state is not None:
        query = query.where(Profile.state == state)
    return list((await db.exec(query)).all())


async def existing_iccids(db: AsyncSession, iccids: list[str]) -> list[str]:
    """Those of ``iccids`` that some profile already has."""
    return list((await db.exec(select(Profile.iccid).where(Profile.iccid.in_(iccids)))).all())  # type: ignore[attr-defined]


# --- profile types -------------------------------------------------------------------------------------


async def add_profile_type(db: AsyncSession, profile_type: ProfileType) -> ProfileType:
    db.add(profile_type)
    await db.flush()
    return profile_type


async def profile_type_by_name(db: AsyncSession, name: str) -> ProfileType | None:
    return (await db.exec(select(ProfileType).where(ProfileType.name == name))).first()


async def list_profile_types(db: AsyncSession) -> list[ProfileType]:
    return list((await db.exec(select(ProfileType).order_by(ProfileType.name))).all())


async def profile_counts_by_type(db: AsyncSession) -> dict[str, dict[str, int]]:
    """profile type name -> {state: number of profiles}."""
    query = (
        select(Profile.profile_type, Profile.state, func.count())
        .where(Profile.profile_type.is_not(None))  # type: ignore[union-attr]
        .group_by(Profile.profile_type, Profile.state)
    )
    counts: dict[str, dict[str, int]] = {}
    for type_id, state, number in (await db.exec(query)).all():
        assert type_id is not None  # excluded by the query
        counts.setdefault(type_id, {})[state] = number
    return counts
