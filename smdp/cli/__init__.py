"""The ``smdp`` command: serve, pki, profile, lpa, bench.

Every subcommand takes ``--data-dir`` (or SMDP_DATA_DIR) so that the server, the profile store, the
test PKI and the virtual eUICC state are found in one place.  Errors are one precise line on stderr
(``smdp: message``; with ``--json`` also ``{"error": ..., "code": ...}`` on stdout) and one of the exit
statuses below, never a stack trace (unless ``--debug``).
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


EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed: refused by the server, an invalid input file, ...
EXIT_USAGE = 2  # a usage error: argparse, or a flag whose value cannot work (fix the command line)
EXIT_UNREACHABLE = 3  # cannot reach the server or the database
EXIT_POLICY = 4  # the simulated device's travel policy refused it (`lpa usage --add`, `lpa networks`)
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit status:
  0    ok
  1    the operation failed (refused by the server, an invalid input file, ...)
  2    usage error: a bad or missing argument, a --data-dir that does not exist, an output file
       that exists (pass --force), an unsupported --database-url
  3    cannot reach the server (--url, the local server) or the database (--database-url)
  4    the Profile's travel policy said no: `lpa usage --add` had some of the traffic refused,
       `lpa networks` found no network it may use (no service)
  130  interrupted
with --json, an error is also printed on stdout as {"error": "...", "code": N}; --debug shows the traceback"""

SUPPORTED_DATABASES = ("sqlite", "postgresql")


class CliError(Exception):
    """A user-facing error: printed as ``smdp: <message>`` with exit status ``code`` (default 1)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def settings_of(args: argparse.Namespace, *, must_exist: bool = True) -> Settings:
    """The settings of the command line; the data directory must exist unless ``must_exist`` is False
    (only `serve` and `pki init` create it)."""
    settings = load_settings(args.data_dir, getattr(args, "database_url", None), getattr(args, "pki", None))
    if must_exist:
        require_data_dir(settings)
    check_database_url(settings.database_url)
    return settings


def require_data_dir(settings: Settings) -> None:
    if not settings.data_dir.is_dir():
        raise CliError(
            f"--data-dir {settings.data_dir} does not exist (create it with `smdp serve --data-dir {settings.data_dir}` "
            f"or `smdp pki init --data-dir {settings.data_dir}`, or check the path)",
            EXIT_USAGE,
        )


def check_database_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        driver = make_url(url).drivername
        scheme = driver.split("+", 1)[0]
    except (ArgumentError, ValueError):
        raise CliError(f"--database-url {redact_url(url)!r} is not a database URL (supported: sqlite:///PATH, "
                       "postgresql://USER@HOST/DB)", EXIT_USAGE) from None  # fmt: skip
    if scheme not in (*SUPPORTED_DATABASES, "postgres"):
        raise CliError(f"--database-url: unsupported database {scheme!r} (supported: {', '.join(SUPPORTED_DATABASES)})",
                       EXIT_USAGE)  # fmt: skip
    if "+" in driver and driver not in ("sqlite+aiosqlite", "postgresql+asyncpg", "postgres+asyncpg"):
        raise CliError(f"--database-url: unsupported driver {driver!r} (give {scheme}://...; smdp picks the driver)", EXIT_USAGE)


def redact_url(url: str) -> str:
    """The URL without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any URL make_url refuses is shown without what follows an @
        return url.split("@", 1)[-1] if "@" in url else url


def database_error(exc: BaseException, url: str) -> CliError | None:
    """A one-line CliError for a database that cannot be reached or opened (None: not such an error)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    reason: str | None = None
    if isinstance(exc, (OperationalError, InterfaceError, DBAPIError)):
        reason = str(getattr(exc, "orig", None) or exc)
    elif isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.startswith("asyncpg"):
        reason = str(exc) or type(exc).__name__
    if reason is None:
        return None
    reason = " ".join(reason.split("\n", 1)[0].split())
    return CliError(f"cannot open the database {redact_url(url)} (--database-url): {reason}", EXIT_UNREACHABLE)


async def database_revision(url: str) -> str | None:
    """The database's schema revision (None: not created); an unreachable database is one CliError line."""
    from smdp.store.db import Database

    db = Database(url)
    try:
        return await db.revision()
    except Exception as exc:
        error = database_error(exc, url)
        if error is None:
            raise
        raise error from None
    finally:
        await db.dispose()


def refuse_overwrite(path: Path, flag: str, force: bool) -> None:
    """An output file that exists is replaced only with --force."""
    if path.exists() and not force:
        raise CliError(f"{flag} {path} exists; pass --force to overwrite it", EXIT_USAGE)


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
    limits_of(args)  # the limit flags checked, named as flags
    for flag, port in (("--port", args.port), ("--operator-port", args.operator_port)):
        if port is not None and not 0 <= port <= 65535:
            raise CliError(f"{flag} {port} is not a TCP port (0 to 65535)", EXIT_USAGE)
    if args.session_retention_days is not None and not args.session_retention_days > 0:
        raise CliError("--session-retention-days must be a positive number of days", EXIT_USAGE)
    options = serve_options(args)
    settings = load_settings(options["data_dir"], options["database_url"], options["pki"])
    check_database_url(settings.database_url)
    if options.settings["database_url"].source not in ("default", "SMDP_DATABASE_URL"):
        # a --database-url (or the --config file's): once it answers, the data directory remembers it for the
        # commands that follow
        from smdp.config import remember_database_url

        await database_revision(settings.database_url)
        remember_database_url(settings)
    logging.basicConfig(level=logging.INFO if options["verbose"] else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from smdp.server import serve  # after the checks: a usage error needs none of the server's modules

    await serve(
        settings,
        options["host"],
        options["port"],
        list(options["addresses"]),
        lab_hex_confirmation_code=options["lab_hex_confirmation_code"],
        limits=options.limits(),
        operator_host=options["operator_host"],
        operator_port=options["operator_port"],
        session_retention_days=options["session_retention_days"],
        listeners=options.listeners,
    )
    return 0


def serve_options(args: argparse.Namespace, config_file: str | None = None) -> Any:
    """smdp.config_file.ServeOptions of `serve`: each option from its flag, else its SMDP_* variable, else the
    --config file, else the default.  A bad file is one line naming the key and its line (exit 1); a listener
    flag (--port...) with a file that has [[listener]] tables is a usage error."""
    import os

    from smdp.config_file import SERVE_OPTIONS, ConfigError, FlagConflict, effective_options, load_config

    path = config_file or getattr(args, "config", None)
    try:
        config = load_config(Path(path)) if path else None
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    dests = {name: "address" if name == "addresses" else name.removeprefix("limits.") for name in SERVE_OPTIONS}
    flags = {name: getattr(args, dest, None) for name, dest in dests.items()}
    try:
        return effective_options(config, flags, os.environ)
    except FlagConflict as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def limits_of(args: argparse.Namespace) -> Any:
    """smdp.web.limits.Limits from the serve flags (see that module for what each limit protects); a flag not
    given (None) has the Limits default."""
    from smdp.web.limits import Limits

    names = ("tls_handshake_timeout", "header_timeout", "body_timeout", "keepalive_timeout", "max_connections")
    try:
        return Limits(**{name: getattr(args, name) for name in names if getattr(args, name, None) is not None})
    except ValueError as exc:  # the messages name the Limits fields: say the flags
        message = str(exc)
        for field in ("tls_handshake_timeout", "header_timeout", "body_timeout", "keepalive_timeout", "max_connections"):
            message = message.replace(field, "--" + field.replace("_", "-"))
        raise CliError(message, EXIT_USAGE) from None


async def cmd_config_check(args: argparse.Namespace) -> int:
    """`smdp config check FILE`: the file checked as `serve --config FILE` checks it (and the CIs its listeners
    name against the PKI, when it exists), then the effective configuration: each option's value and source
    (the environment's SMDP_* variables apply, as for serve), and every listener."""
    from smdp.config import remembered_database_url
    from smdp.config_file import ConfigError, Setting, describe, describe_text
    from smdp.pki.store import PkiConfigError, load_server_credentials

    options = serve_options(args, args.file)
    settings = load_settings(options["data_dir"], options["database_url"], options["pki"])
    if options.settings["database_url"].source == "default" and remembered_database_url(settings.data_dir):
        options.settings["database_url"] = Setting(settings.database_url, "remembered by the data directory")
    credentials = None
    if settings.pki_manifest.exists():
        try:
            credentials = load_server_credentials(settings.pki_manifest)
        except PkiConfigError as exc:
            raise CliError(f"pki: {exc}") from None
    shown = {"data_dir": settings.data_dir, "database_url": redact_url(settings.database_url), "pki": settings.pki_manifest}
    try:
        description = describe(options, credentials, shown)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    description["pkiFound"] = credentials is not None
    text = describe_text(description)
    if credentials is None:
        text += f"\n(no PKI at {settings.pki_manifest} yet: serve creates the test PKI and checks the listeners' CIs then)"
    text += "\n(operators named for client certificates must exist in the database: serve checks that at start)"
    print_result(args, description, text)
    return 0


# --- pki -------------------------------------------------------------------------------------------


async def cmd_pki_init(args: argparse.Namespace) -> int:
    from smdp.pki.issue import init_pki, tls_names_with_defaults

    try:  # devices reach a lab server by a name of its own: the DPtls certificate must carry it (RFC 6125)
        names = tls_names_with_defaults(args.tls_name)
    except ValueError as exc:
        raise CliError(f"--tls-name: {exc}", EXIT_USAGE) from None
    directory = Path(args.dir) if args.dir else settings_of(args, must_exist=False).certs_dir
    try:
        manifest = init_pki(directory, overwrite=args.force, tls_names=names)
    except FileExistsError:
        where = f"--dir {directory}" if args.dir else str(directory)
        hint = " (or, to add TLS names only, keep it: `smdp serve --address HOST` re-issues its TLS certificate under the same CI)"
        raise CliError(f"a PKI already exists in {where}; pass --force to replace it"
                       + (hint if args.tls_name and not args.dir else ""), EXIT_USAGE) from None  # fmt: skip
    if not args.dir:  # in the data directory, certificates too are 0600 (see smdp.store.files)
        from smdp.store.files import tighten

        tighten(directory)
    print(f"test PKI (NIST P-256 and brainpoolP256r1) written; TLS names: {', '.join(names)}; manifest: {manifest}")
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
    except BaseException as exc:
        await db.dispose()
        error = database_error(exc, settings.database_url) if isinstance(exc, Exception) else None
        if error is not None:
            raise error from None
        raise
    return db


async def cmd_profile_import(args: argparse.Namespace) -> int:
    from smdp.profiles.saip import check_iccid
    from smdp.services.profiles import ProfileImportError, import_profile

    if args.iccid is not None:
        try:
            check_iccid(args.iccid)
        except ValueError as exc:
            raise CliError(f"--iccid: {exc}", EXIT_USAGE) from None
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
            raise CliError(f"cannot read --metadata {args.metadata}: {getattr(exc, 'strerror', None) or exc}") from None
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
            iccid=args.iccid,
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
    if imported.file_iccid is not None:
        result["fileIccid"] = imported.file_iccid
        text += f" (stamped over the file's {imported.file_iccid})"
    if imported.matching_id:
        text += f", matching ID {imported.matching_id}"
    if imported.eid:
        text += f", bound to EID {imported.eid}"
    print_result(args, result, text)
    return 0


async def operator_id_by_name(db, data_dir: Path, name: str) -> int:  # type: ignore[no-untyped-def]
    from smdp.services.operators import DEFAULT_OPERATOR, ensure_default_operator
    from smdp.store.operators import operator_by_name

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


class UsageError(SystemExit):
    """argparse's error (exit status 2), raised for main() to answer like every other error."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.parser, self.message = parser, message


_main_reports_usage = False  # True while main() parses: it prints the error itself, in one line


class SmdpArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        if not _main_reports_usage:  # build_parser().parse_args() called by others: argparse's own message
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise UsageError(self, message)


def common_options(parser: argparse.ArgumentParser, *, database: bool = False, json_output: bool = False) -> None:
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help="state directory (default: $SMDP_DATA_DIR or ~/.local/share/smdp)")
    parser.add_argument("--pki", help="PKI manifest (TOML) to use instead of the generated test PKI")
    if database:
        parser.add_argument("--database-url", help="database URL, sqlite:///PATH or postgresql://USER@HOST/DB (default: "
                            "$SMDP_DATABASE_URL, else the one the data directory remembers, else SQLite in it)")
    if json_output:
        parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def build_parser() -> argparse.ArgumentParser:
    parser = SmdpArgumentParser(
        prog="smdp", description="SGP.22 SM-DP+ simulator", epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the SM-DP+ (ES9+ over HTTPS)")
    common_options(serve, database=True)
    serve.add_argument(
        "--config", metavar="FILE",
        help="configuration file (TOML, see docs/configuration.md): options and [[listener]] tables; a flag or an "
             "SMDP_* variable beats the file, the file beats the defaults",
    )  # fmt: skip
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default 8443)")
    serve.add_argument(
        "--address", action="append", default=[],
        help="an SM-DP+ address LPAs may use (host[:port]); the first is the public one, "
        "given in ConfirmOrder answers and activation codes",
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
    for flag, kind, metavar, text in (
        ("--keepalive-timeout", float, "S", "idle time allowed between requests (default 30)"),
        ("--max-connections", int, "N", "open connections per listener; beyond it new ones are closed at once (default 512)"),
        ("--tls-handshake-timeout", float, "S", "TCP accepted to TLS handshake done (default 10)"),
        ("--header-timeout", float, "S", "connection or first byte of a request to its headers complete (default 10)"),
        ("--body-timeout", float, "S", "headers to request body complete; then 1.6/2.1 (default 10)"),
    ):
        limits.add_argument(flag, type=kind, default=None, metavar=metavar, help=text)
    serve.add_argument(
        "--session-retention-days", type=float, default=None, metavar="DAYS",
        help="keep ended download sessions this long (late notifications are verified with them; default 30)",
    )
    serve.add_argument("-v", "--verbose", action="store_true")
    serve.set_defaults(handler=cmd_serve)

    config = sub.add_parser("config", help="the `serve --config` file").add_subparsers(dest="config_command", required=True)
    check = config.add_parser("check", help="check a configuration file and print the configuration `serve --config FILE` would run with")
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    check.add_argument("file", help="the configuration file (TOML)")
    check.add_argument("--json", action="store_true", help="machine-readable JSON output")
    check.set_defaults(handler=cmd_config_check)

    pki = sub.add_parser("pki", help="test PKI").add_subparsers(dest="pki_command", required=True)
    init = pki.add_parser("init", help="create a test PKI (CI, EUM, eUICC, DPauth, DPpb, DPtls; NIST and brainpool)")
    common_options(init)
    init.add_argument("--dir", help="where to write it (default: DATA_DIR/certs)")
    init.add_argument("--force", action="store_true", help="overwrite an existing PKI")
    init.add_argument(
        "--tls-name", action="append", default=[], metavar="HOST",
        help="a DNS name or IP address the TLS certificate (DPtls) names besides localhost, 127.0.0.1 and ::1 (repeatable)",
    )
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
    imp.add_argument("--iccid", help="give the profile this ICCID (Luhn-checked; written to its ProfileHeader and "
                     "EF.ICCID), e.g. to import one GSMA TS.48 file several times")
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
    sub.choices["bench"].set_defaults(handler=cmd_bench_checked)
    return parser


async def cmd_bench_checked(args: argparse.Namespace) -> int:
    """`smdp bench` with its usage errors answered like every other command's (exit 2, --json)."""
    from smdp.bench import MAX_SESSIONS, cmd_bench

    if not 1 <= args.sessions <= MAX_SESSIONS:
        raise CliError(f"--sessions must be 1..{MAX_SESSIONS}", EXIT_USAGE)
    if not 1 <= args.concurrency <= 256:
        raise CliError("--concurrency must be 1..256", EXIT_USAGE)
    if args.server:
        if not (args.server_pid and args.data_dir):
            raise CliError("--server needs --server-pid and --data-dir (the server's) to measure it", EXIT_USAGE)
        settings_of(args)  # the server's data directory exists
    elif args.data_dir:
        settings_of(args, must_exist=False)
    return await cmd_bench(args)


def main(argv: list[str] | None = None) -> int:
    from smdp.store.files import restrict_umask

    restrict_umask()  # whatever a command writes (eUICC state, keys, codes) is its owner's alone
    arguments = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in arguments
    global _main_reports_usage
    _main_reports_usage = True
    try:
        args = build_parser().parse_args(arguments)
    except UsageError as exc:  # one line too: the command, argparse's message, where the usage is
        command = exc.parser.prog.removeprefix("smdp").strip()
        where = f"{command}: " if command else ""
        return report_error(f"{where}{exc.message} (see `{exc.parser.prog} --help`)", EXIT_USAGE, wants_json)
    finally:
        _main_reports_usage = False
    debug = bool(getattr(args, "debug", False))
    wants_json = bool(getattr(args, "json", False))
    try:
        return asyncio.run(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one error path of every command: a line, not a traceback
        if debug:
            import traceback

            traceback.print_exc()
        message, code = describe_error(exc, args)
        return report_error(message, code, wants_json)


def describe_error(exc: Exception, args: argparse.Namespace) -> tuple[str, int]:
    """The one-line message and exit status of an error a command raised."""
    from smdp.lpa.es9client import Es9Error
    from smdp.operator_client import Es2Error
    from smdp.pki.store import PkiConfigError

    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, Es2Error):
        return str(exc), EXIT_UNREACHABLE if exc.unreachable else EXIT_FAILED
    if isinstance(exc, Es9Error):
        unreachable = exc.subject_code is None and "transport" in exc.message
        return str(exc), EXIT_UNREACHABLE if unreachable else EXIT_FAILED
    if hasattr(args, "database_url") and type(exc).__module__.startswith(("sqlalchemy", "asyncpg")):
        try:
            error = database_error(exc, load_settings(args.data_dir, args.database_url, getattr(args, "pki", None)).database_url)
        except Exception:  # noqa: BLE001 - no better message than the generic one below
            error = None
        if error is not None:
            return str(error), error.code
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"cannot connect: {exc}", EXIT_UNREACHABLE
    if isinstance(exc, (PkiConfigError, OSError, ValueError)):
        return (str(exc) or type(exc).__name__), EXIT_FAILED
    first = (str(exc).splitlines() or [""])[0]
    return f"internal error: {type(exc).__name__}: {first} (run with --debug for the traceback)", EXIT_FAILED


def report_error(message: str, code: int, as_json: bool) -> int:
    line = " ".join(message.split())
    print(f"smdp: {line}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": line, "code": code}))
    return code
