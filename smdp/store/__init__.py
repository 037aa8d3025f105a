"""Persistence: the database tables and every SQL statement smdp runs.

All SQL lives in this package: the services (smdp.services), the web layer and the CLI call the small named
query functions below inside their own ``Database.transaction()`` blocks, and never build a statement
themselves, so what each call reads, locks (``FOR UPDATE``, ``SKIP LOCKED``) and writes can be reviewed here.

- :mod:`~smdp.store.tables`: every table class (profiles, profile types, download sessions, notifications,
  operators, outbox events), ``utcnow`` and ``touch``; importing it registers the tables on SQLModel.metadata.
- :mod:`~smdp.store.profiles`: queries on profiles and profile types.
- :mod:`~smdp.store.sessions`: queries on ES9+ download sessions and the notifications recorded for them.
- :mod:`~smdp.store.operators`: queries on operators (ES2+ callers) and ``token_digest`` of their API tokens.
- :mod:`~smdp.store.outbox`: queries on the operator callback outbox: queuing, the sender's head/claim/record
  statements, event states, listing and manual retry.
- :mod:`~smdp.store.db`: the async engine and its transactions (SQLite one-writer mode, PostgreSQL pool).
- :mod:`~smdp.store.migrate` and ``migrations/``: schema migrations (Alembic), run by ``smdp db upgrade``.
- :mod:`~smdp.store.files`: file permissions of the data directory (no SQL).
"""
