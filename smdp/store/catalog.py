"""Profile types (templates, metadata defaults, policy) and their repository functions.

A profile type is what an operator defines once: a SAIP template package, the StoreMetadataRequest
defaults of its profiles (smdp.rsp.metadata JSON form), an optional travel policy document
(smdp.profiles.policy) and the AKA algorithm choice. Generated profiles point back to it
by name (``Profile.profile_type``), which is also what ES2+ orders name as profileType.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, func
from sqlmodel import JSON, Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import Profile, utcnow


class ProfileType(SQLModel, table=True):
    __tablename__ = "profile_type"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    template_der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    profile_metadata: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    policy: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    algorithm: str = Field(default="milenage", max_length=16)  # milenage | template
    # lifecycle defaults of its profiles (ES2+ orders, ES9+ downloads)
    reusable: bool = False  # R&D: downloadable any number of times
    max_download_attempts: int | None = None
    order_validity_days: int | None = None  # an order placed for a profile of this type expires after
    created_at: datetime = Field(default_factory=utcnow)


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
        counts.setdefault(type_id, {})[state] = number
    return counts


async def existing_iccids(db: AsyncSession, iccids: list[str]) -> list[str]:
    """Those of ``iccids`` that some profile already has."""
    return list((await db.exec(select(Profile.iccid).where(Profile.iccid.in_(iccids)))).all())  # type: ignore[attr-defined]


async def existing_matching_ids(db: AsyncSession, matching_ids: list[str]) -> list[str]:
    query = select(Profile.matching_id).where(Profile.matching_id.in_(matching_ids))  # type: ignore[union-attr]
    return [m for m in (await db.exec(query)).all() if m is not None]
