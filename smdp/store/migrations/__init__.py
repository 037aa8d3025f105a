"""Alembic migrations of the smdp schema, run programmatically by :mod:`smdp.store.migrate` (no alembic.ini)."""
