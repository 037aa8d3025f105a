"""The ``smdp`` command: serve, pki, profile, lpa, bench.

Every subcommand takes ``--data-dir`` (or SMDP_DATA_DIR) so that the server, the profile store, the
test PKI and the virtual eUICC state are found in one place.  Errors are one precise line on stderr
and exit status 1 or 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from smdp.config import Settings, load_settings

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class CliError(Exception):
    """A user-facing error: printed as ``smdp: <message>`` with exit status 1."""


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(args.data_dir, getattr(args, "database_url", None), getattr(args, "pki", None))


def local_server_address(settings: Settings, *, operator: bool = False) -> str | None:
    """host:port of the `smdp serve` that last ran on this data directory (DATA_DIR/server.json); with
    ``operator``, its ES2+ listener (``serve --operator-port``) if it has one of its own."""
    info = settings.data_dir / "server.json"
    try:
        values = json.loads(info.read_text())
        return str((operator and values.get("operator_address")) or values["address"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def print_result(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, indent=None if args.json else 2) if args.json else text)


# --- serve -----------------------------------------------------------------------------------------


async def cmd_serve(args: argparse.Namespace) -> int:
    from smdp.server import serve

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    await serve(
        settings_of(args),
        args.host,
        args.port,
        args.address,
        lab_hex_confirmation_code=args.lab_hex_confirmation_code,
        limits=limits_of(args),
        operator_host=args.operator_host,
        operator_port=args.operator_port,
        session_retention_days=args.session_retention_days,
    )
    return 0


def limits_of(args: argparse.Namespace) -> Any:
    """smdp.web.limits.Limits from the serve flags (see that module for what each limit protects)."""
    from smdp.web.limits import Limits

    try:
        return Limits(
            tls_handshake_timeout=args.tls_handshake_timeout,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            keepalive_timeout=args.keepalive_timeout,
            max_connections=args.max_connections,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None


# --- pki -------------------------------------------------------------------------------------------


async def cmd_pki_init(args: argparse.Namespace) -> int:
    from smdp.pki.issue import init_pki

    directory = Path(args.dir) if args.dir else settings_of(args).certs_dir
    manifest = init_pki(directory, overwrite=args.force)
    if not args.dir:  # in the data directory, certificates too are 0600 (see smdp.store.files)
        from smdp.store.files import tighten

        tighten(directory)
    print(f"test PKI (NIST P-256 and brainpoolP256r1) written; manifest: {manifest}")
    return 0


# --- profile ---------------------------------------------------------------------------------------


async def open_database(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The database of the data directory (or --database-url), migrated to this build's schema (created if
    empty), with the data directory's master key as its sealer (profile packages and confirmation codes are
    stored sealed; the migrations seal what an older build kept in clear)."""
    from smdp.config import master_sealer
    from smdp.store.db import Database
    from smdp.store.files import secure_data_dir

    settings = settings_of(args)
    secure_data_dir(settings)  # umask 077, the data directory 0700, files an earlier run left readable fixed
    db = Database(settings.database_url)
    db.sealer = master_sealer(settings)
    try:
        await db.upgrade()
    except BaseException:
        await db.dispose()
        raise
    return db


async def cmd_profile_import(args: argparse.Namespace) -> int:
    from smdp.services.profiles import ProfileImportError, import_profile

    path = Path(args.file)
    try:
        der = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    metadata = None
    if args.metadata:
        try:
            metadata = json.loads(Path(args.metadata).read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read metadata {args.metadata}: {exc}") from None
    db = await open_database(args)
    try:
        imported = await import_profile(
            db,
            der,
            matching_id=args.matching_id,
            eid=args.eid,
            confirmation_code=args.confirmation_code,
            metadata=metadata,
            reusable=args.reusable,
            operator_id=await operator_id_by_name(db, settings_of(args).data_dir, args.operator),
            profile_type=args.profile_type,
            stock=args.stock,
        )
    except ProfileImportError as exc:
        raise CliError(f"{path}: {exc}") from None
    finally:
        await db.dispose()
    result = {
        "iccid": imported.iccid,
        "matchingId": imported.matching_id,
        "eid": imported.eid,
        "confirmationCodeRequired": imported.confirmation_code_required,
    }
    text = f"imported ICCID {imported.iccid}"
    if imported.matching_id:
        text += f", matching ID {imported.matching_id}"
    if imported.eid:
        text += f", bound to EID {imported.eid}"
    print_result(args, result, text)
    return 0


async def operator_id_by_name(db, data_dir: Path, name: str) -> int:  # type: ignore[no-untyped-def]
    from smdp.services.operators import DEFAULT_OPERATOR, ensure_default_operator
    from smdp.store.orders import operator_by_name

    if name == DEFAULT_OPERATOR:
        return await ensure_default_operator(db, data_dir)
    async with db.transaction() as session:
        operator = await operator_by_name(session, name)
    if operator is None or operator.id is None:
        raise CliError(f"no operator {name!r} (create it with `smdp operator add {name}`)")
    return operator.id


async def cmd_profile_list(args: argparse.Namespace) -> int:
    from smdp.services.profiles import list_profiles

    db = await open_database(args)
    try:
        rows = await list_profiles(db)
    finally:
        await db.dispose()
    lines = [f"{r['iccid']:<20} {r['state']:<11} {r['matchingId'] or '-':<24} {r['eid'] or '-'}" for r in rows]
    print_result(args, rows, "\n".join(lines) or "no profiles")
    return 0


# --- parser ----------------------------------------------------------------------------------------


def common_options(parser: argparse.ArgumentParser, *, database: bool = False, json_output: bool = False) -> None:
    parser.add_argument("--data-dir", help="state directory (default: $SMDP_DATA_DIR or ~/.local/share/smdp)")
    parser.add_argument("--pki", help="PKI manifest (TOML) to use instead of the generated test PKI")
    if database:
        parser.add_argument("--database-url", help="database URL (default: $SMDP_DATABASE_URL or SQLite in the data dir)")
    if json_output:
        parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smdp", description="SGP.22 SM-DP+ simulator")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the SM-DP+ (ES9+ over HTTPS)")
    common_options(serve, database=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument(
        "--address", action="append", default=[],
        help="an SM-DP+ address LPAs may use (host[:port]); the first is the public one, given in ConfirmOrder answers and activation codes",
    )
    serve.add_argument(
        "--lab-hex-confirmation-code", action="store_true",
        help="lab option: also accept hashCc computed over the hex-decoded Confirmation Code (some test tools do)",
    )
    serve.add_argument(
        "--operator-port", type=int, default=None,
        help="serve ES2+ and /admin only on this port (same TLS credentials); the --port listener then serves ES9+ only",
    )
    serve.add_argument("--operator-host", default=None, help="the address of the --operator-port listener (default: --host)")
    limits = serve.add_argument_group("connection limits (per listener)")
    limits.add_argument("--keepalive-timeout", type=float, default=30.0, metavar="S", help="idle time allowed between requests (default 30)")
    limits.add_argument("--max-connections", type=int, default=512, metavar="N", help="open connections per listener; beyond it new ones are closed at once (default 512)")
    limits.add_argument("--tls-handshake-timeout", type=float, default=10.0, metavar="S", help="TCP accepted to TLS handshake done (default 10)")
    limits.add_argument("--header-timeout", type=float, default=10.0, metavar="S", help="connection or first byte of a request to its headers complete (default 10)")
    limits.add_argument("--body-timeout", type=float, default=10.0, metavar="S", help="headers to request body complete; then 1.6/2.1 (default 10)")
    serve.add_argument(
        "--session-retention-days", type=float, default=30.0, metavar="DAYS",
        help="keep ended download sessions this long (late notifications are verified with them; default 30)",
    )
    serve.add_argument("-v", "--verbose", action="store_true")
    serve.set_defaults(handler=cmd_serve)

    pki = sub.add_parser("pki", help="test PKI").add_subparsers(dest="pki_command", required=True)
    init = pki.add_parser("init", help="create a test PKI (CI, EUM, eUICC, DPauth, DPpb, DPtls; NIST and brainpool)")
    common_options(init)
    init.add_argument("--dir", help="where to write it (default: DATA_DIR/certs)")
    init.add_argument("--force", action="store_true", help="overwrite an existing PKI")
    init.set_defaults(handler=cmd_pki_init)

    profile = sub.add_parser("profile", help="profiles").add_subparsers(dest="profile_command", required=True)
    imp = profile.add_parser("import", help="import a SAIP profile package (DER)")
    common_options(imp, database=True, json_output=True)
    imp.add_argument("file")
    imp.add_argument("--matching-id")
    imp.add_argument("--eid", help="bind to this eUICC (without --matching-id: its default SM-DP+ order)")
    imp.add_argument("--confirmation-code")
    imp.add_argument("--metadata", help="JSON file with the profile metadata (serviceProviderName, profileName, ...)")
    imp.add_argument("--reusable", action="store_true", help="R&D: downloadable any number of times")
    imp.add_argument("--stock", action="store_true", help="Available for ES2+ orders (no matching ID yet)")
    imp.add_argument("--profile-type", help="the profile type an ES2+ downloadOrder can ask for")
    imp.add_argument("--operator", default="default", help="the operator owning it (default: default)")
    imp.set_defaults(handler=cmd_profile_import)
    lst = profile.add_parser("list", help="list profiles")
    common_options(lst, database=True, json_output=True)
    lst.set_defaults(handler=cmd_profile_list)
    from smdp.cli import profiles as profile_commands

    profile_commands.add_commands(sub, profile, common_options)

    from smdp.cli import lpa as lpa_commands

    lpa_commands.add_commands(sub, common_options)
    from smdp.cli import order as order_commands

    order_commands.add_commands(sub, common_options)
    order_commands.add_outbox_commands(sub, common_options)
    from smdp.cli import euicc as euicc_commands

    euicc_commands.add_commands(sub, common_options)
    from smdp.cli import db as db_commands

    db_commands.add_commands(sub, common_options)
    from smdp.bench import add_bench_command

    add_bench_command(sub, common_options)
    return parser


def main(argv: list[str] | None = None) -> int:
    from smdp.store.files import restrict_umask

    restrict_umask()  # whatever a command writes (eUICC state, keys, codes) is its owner's alone
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"smdp: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # configuration and I/O problems: one line, no trace
        from smdp.pki.store import PkiConfigError

        if isinstance(exc, (PkiConfigError, OSError, ValueError)):
            print(f"smdp: {exc}", file=sys.stderr)
            return 1
        raise


