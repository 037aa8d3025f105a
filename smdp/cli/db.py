"""``smdp db upgrade|status``: the database's schema revision (Alembic migrations, smdp.store.migrations)."""

from __future__ import annotations

import argparse
from typing import Any

from smdp.cli import CliError, database_error, database_revision, print_result, settings_of


async def cmd_db_status(args: argparse.Namespace) -> int:
    """The database's revision and this build's (head); changes nothing.  Exit status 0 even when behind."""
    from smdp.store import migrate

    current = await database_revision(settings_of(args).database_url)
    head = migrate.head_revision()
    state = "up to date" if current == head else ("not created" if current is None else "behind: run `smdp db upgrade`")
    print_result(
        args,
        {"revision": current, "head": head, "upToDate": current == head},
        f"revision: {current or 'none'}\nhead:     {head}\n{state}",
    )
    return 0


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Migrate to head, sealing with the data directory's master key what an older build kept in clear."""
    from smdp.config import master_sealer
    from smdp.store import migrate
    from smdp.store.db import Database
    from smdp.store.files import secure_data_dir

    settings = settings_of(args)
    secure_data_dir(settings)
    db = Database(settings.database_url)
    try:
        before = await db.revision()
        try:
            await db.upgrade(master_sealer(settings))
        except RuntimeError as exc:  # SealerRequired, an unversioned database of unknown shape, ...
            raise CliError(f"database upgrade failed, nothing changed: {exc}") from None
        after = await db.revision()
    except Exception as exc:
        error = database_error(exc, settings.database_url)
        if error is None:
            raise
        raise error from None
    finally:
        await db.dispose()
    if args.database_url:  # the data directory remembers it for the commands that follow
        from smdp.config import remember_database_url

        remember_database_url(settings)
    text = f"already at revision {after} (head)" if before == after else f"upgraded from {before or 'an empty database'} to {after} (head)"
    print_result(args, {"from": before, "revision": after, "head": migrate.head_revision()}, text)
    return 0


def add_commands(sub: Any, common: Any) -> None:
    db = sub.add_parser("db", help="database schema: upgrade (migrations), status").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="migrate the database to this build's schema (creates it if empty)")
    common(upgrade, database=True, json_output=True)
    upgrade.set_defaults(handler=cmd_db_upgrade)
    status = db.add_parser("status", help="the database's schema revision and this build's (head)")
    common(status, database=True, json_output=True)
    status.set_defaults(handler=cmd_db_status)
