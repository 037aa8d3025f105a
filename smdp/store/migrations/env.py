"""Alembic environment: run on the connection :mod:`smdp.store.migrate` passes in ``config.attributes``.

Offline (SQL script) mode is not supported: the data migrations need the rows (and the master key).
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from smdp.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("smdp migrations run through smdp.store.migrate (smdp db upgrade), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs by copying the table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
