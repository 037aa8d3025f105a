"""Operators (ES2+ callers): creation with an API token, and the default operator of a data directory.

Tokens are random (256 bits) and shown once; the database keeps their SHA-256 only.  They read
``smdp_`` followed by URL-safe base64 (``^smdp_[A-Za-z0-9][A-Za-z0-9_-]+$``): the prefix lets secret
scanners recognise a leaked token, and a token never starts with '-', so it can't be taken for a
command-line option.  (Tokens made before this format keep working: only their digest is compared.)  The default
operator's token is also written to DATA_DIR/operators/default.token (mode 0600), so that
`smdp order --data-dir DIR` works against a local server with no setup.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from smdp.atomic import write_atomic
from smdp.store import operators
from smdp.store.db import Database
from smdp.store.tables import Operator

DEFAULT_OPERATOR = "default"
TOKEN_PREFIX = "smdp_"
_ALNUM = string.ascii_letters + string.digits


class OperatorError(ValueError):
    """The operator can't be created or found; the message says why."""


def new_token() -> str:
    """``smdp_`` + an alphanumeric character + 256 random bits, URL-safe base64."""
    return TOKEN_PREFIX + secrets.choice(_ALNUM) + secrets.token_urlsafe(32)


def _callback_url(url: str | None) -> str | None:
    from smdp.services.outbox import CallbackConfigError, check_callback_url

    if not url:
        return None
    try:
        return check_callback_url(url)
    except CallbackConfigError as exc:
        raise OperatorError(str(exc)) from None


def token_path(data_dir: Path, name: str = DEFAULT_OPERATOR) -> Path:
    return data_dir / "operators" / f"{name}.token"


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text + "\n", mode=0o600)


async def add_operator(db: Database, name: str, callback_url: str | None = None) -> str:
    """Create an operator; returns its new API token."""
    if not name or len(name) > 64:
        raise OperatorError("an operator name is 1 to 64 characters")
    callback_url = _callback_url(callback_url)
    token = new_token()
    async with db.transaction() as session:
        if await operators.operator_by_name(session, name) is not None:
            raise OperatorError(f"operator {name!r} already exists")
        operators.add_operator(session, Operator(name=name, token_sha256=operators.token_digest(token), callback_url=callback_url))
    return token


async def ensure_default_operator(db: Database, data_dir: Path) -> int:
    """The default operator's id, creating it (and its token file) on first use."""
    async with db.transaction() as session:
        existing = await operators.operator_by_name(session, DEFAULT_OPERATOR)
        if existing is not None and existing.id is not None:
            return existing.id
    try:
        token = await add_operator(db, DEFAULT_OPERATOR)
    except (OperatorError, IntegrityError):  # another process created it first
        pass
    else:
        _write_secret(token_path(data_dir), token)
    async with db.transaction() as session:
        operator = await operators.operator_by_name(session, DEFAULT_OPERATOR)
        assert operator is not None and operator.id is not None
        return operator.id


async def set_callback(db: Database, name: str, callback_url: str | None, ca_pem: str | None = None) -> None:
    """Set (or with None clear) the operator's callback URL and the CA certificate(s), PEM, trusted for it
    besides the system trust store.  The URL is https, or http to a loopback host; the two are set together
    (no ``ca_pem``: the system trust store only)."""
    from smdp.services.outbox import CallbackConfigError, check_ca_pem

    callback_url = _callback_url(callback_url)
    if ca_pem is not None:
        if callback_url is None:
            raise OperatorError("a callback CA needs a callback URL")
        try:
            ca_pem = check_ca_pem(ca_pem)
        except CallbackConfigError as exc:
            raise OperatorError(f"callback CA: {exc}") from None
    async with db.transaction() as session:
        if not await operators.set_callback(session, name, callback_url, ca_pem):
            raise OperatorError(f"no operator {name!r}")
