"""Operators (ES2+ callers): creation with an API token, and the default operator of a data directory.

Tokens are random (256 bits) and shown once; the database keeps their SHA-256 only.  The default
operator's token is also written to DATA_DIR/operators/default.token (mode 0600), so that
`smdp order --data-dir DIR` works against a local server with no setup.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from smdp.store import orders
from smdp.store.db import Database

DEFAULT_OPERATOR = "default"


class OperatorError(ValueError):
    """The operator can't be created or found; the message says why."""


def token_path(data_dir: Path, name: str = DEFAULT_OPERATOR) -> Path:
    return data_dir / "operators" / f"{name}.token"


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.replace(tmp, path)


async def add_operator(db: Database, name: str, callback_url: str | None = None) -> str:
    """Create an operator; returns its new API token."""
    if not name or len(name) > 64:
        raise OperatorError("an operator name is 1 to 64 characters")
    token = secrets.token_urlsafe(32)
    async with db.transaction() as session:
        if await orders.operator_by_name(session, name) is not None:
            raise OperatorError(f"operator {name!r} already exists")
        session.add(orders.Operator(name=name, token_sha256=orders.token_digest(token), callback_url=callback_url))
    return token


async def ensure_default_operator(db: Database, data_dir: Path) -> int:
    """The default operator's id, creating it (and its token file) on first use."""
    async with db.transaction() as session:
        existing = await orders.operator_by_name(session, DEFAULT_OPERATOR)
        if existing is not None and existing.id is not None:
            return existing.id
    try:
        token = await add_operator(db, DEFAULT_OPERATOR)
    except (OperatorError, IntegrityError):  # another process created it first
        pass
    else:
        _write_secret(token_path(data_dir), token)
    async with db.transaction() as session:
        operator = await orders.operator_by_name(session, DEFAULT_OPERATOR)
        assert operator is not None and operator.id is not None
        return operator.id


async def set_callback(db: Database, name: str, callback_url: str | None) -> None:
    async with db.transaction() as session:
        operator = await orders.operator_by_name(session, name)
        if operator is None:
            raise OperatorError(f"no operator {name!r}")
        operator.callback_url = callback_url
        session.add(operator)
