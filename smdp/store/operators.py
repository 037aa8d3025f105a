"""Queries on operators (ES2+ callers, SGP.22 section 5.3).

Operators authenticate with API tokens; only :func:`token_digest` of a token is stored and compared.
"""

from __future__ import annotations

import hashlib

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.store.tables import Operator


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_operator(db: AsyncSession, operator: Operator) -> None:
    """Queue the INSERT of ``operator``: it is written at commit, where a concurrent creation of the same
    name (or token) fails with IntegrityError."""
    db.add(operator)


async def operator_by_token(db: AsyncSession, token: str) -> Operator | None:
    return (await db.exec(select(Operator).where(Operator.token_sha256 == token_digest(token)))).first()


async def operator_by_name(db: AsyncSession, name: str) -> Operator | None:
    return (await db.exec(select(Operator).where(Operator.name == name))).first()


async def operator_by_id(db: AsyncSession, operator_id: int) -> Operator | None:
    return (await db.exec(select(Operator).where(Operator.id == operator_id))).first()


async def set_callback(db: AsyncSession, name: str, callback_url: str | None, callback_ca: str | None) -> bool:
    """Set operator ``name``'s callback URL and CA certificate(s) (written at commit); False if there is no
    such operator."""
    operator = await operator_by_name(db, name)
    if operator is None:
        return False
    operator.callback_url = callback_url
    operator.callback_ca = callback_ca
    db.add(operator)
    return True
