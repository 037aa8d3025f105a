"""``smdp order ...`` and ``smdp operator ...``: ES2+ ordering from the command line (single orders and CSV
batches writing activation codes and QR images), and operator accounts of a local server."""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import ssl
import sys
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from smdp.cli import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError, local_server_address, print_result, refuse_overwrite, settings_of
from smdp.operator_client import Es2Client, Es2Error
from smdp.rsp.activation import ActivationCode

TOKEN_ENV = "SMDP_TOKEN"


def token_from_args(args: argparse.Namespace) -> str | None:
    """The API token given: --token, else --token-file (first line), else $SMDP_TOKEN; None if none is.
    --token shows the secret to anyone listing processes; prefer the other two."""
    token = getattr(args, "token", None)
    token_file = getattr(args, "token_file", None)
    if token is not None and token_file:
        raise CliError("give --token or --token-file, not both")
    if token is None and token_file:
        try:
            lines = Path(token_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read the token file {token_file}: {getattr(exc, 'strerror', None) or exc}") from None
        token = lines[0] if lines else ""
        if not token.strip():
            raise CliError(f"the token file {token_file} is empty")
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None:
        token = token.strip()
        if not token:
            raise CliError("the API token is empty")
    return token


def client_from_args(args: argparse.Namespace) -> Es2Client:
    """Credentials: --url and --operator, the token from --token, --token-file or $SMDP_TOKEN; else the
    local server (of --data-dir) and its default operator's token file."""
    from smdp.pki.store import load_server_credentials
    from smdp.services.operators import DEFAULT_OPERATOR, token_path

    url, token, ca = args.url, token_from_args(args), Path(args.ca) if args.ca else None
    settings = settings_of(args, must_exist=False)
    if url is not None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (ValueError for a port out of range)
        except ValueError as exc:
            raise CliError(f"--url {url!r} is not a URL: {exc}", EXIT_USAGE) from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise CliError(f"--url {url!r} is not an https:// URL (e.g. https://smdp.example:8443)", EXIT_USAGE)
    if ca is not None and not ca.is_file():
        raise CliError(f"--ca {ca}: no such file", EXIT_USAGE)
    if url is None:
        from smdp.cli import require_data_dir

        require_data_dir(settings)
        address = local_server_address(settings, operator=True)
        if address is None:
            raise CliError(f"no --url and no local server found in {settings.data_dir}: is `smdp serve` running?", EXIT_UNREACHABLE)
        url = "https://" + address
        if ca is None and not args.insecure and settings.pki_manifest.exists():
            ca = load_server_credentials(settings.pki_manifest).tls_ca_cert_path
    client_cert, client_key = getattr(args, "client_cert", None), getattr(args, "client_key", None)
    for flag, value in (("--client-cert", client_cert), ("--client-key", client_key)):
        if value is not None and not Path(value).is_file():
            raise CliError(f"{flag} {value}: no such file", EXIT_USAGE)
    if client_key is not None and client_cert is None:
        raise CliError("--client-key needs --client-cert", EXIT_USAGE)
    if client_cert is not None:  # mutual TLS: the certificate names the operator; a token only for client_auth "both"
        try:
            return Es2Client(url, token or "", args.operator or DEFAULT_OPERATOR, ca_file=ca, insecure=args.insecure,
                             client_cert=Path(client_cert), client_key=Path(client_key) if client_key else None)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"--client-cert {client_cert}: cannot use it with its key: {exc}") from None
    if token is None:
        path = token_path(settings.data_dir, args.operator or DEFAULT_OPERATOR)
        if not path.exists():
            raise CliError(f"no --token, --token-file or ${TOKEN_ENV}, and no token file {path}")
        token = path.read_text().strip()
    return Es2Client(url, token, args.operator or DEFAULT_OPERATOR, ca_file=ca, insecure=args.insecure)


def es2_failure(exc: Es2Error) -> CliError:
    """The CliError of a failed ES2+ call: exit status 3 when the server could not be reached."""
    return CliError(str(exc), EXIT_UNREACHABLE if exc.unreachable else EXIT_FAILED)


@dataclass
class OrderResult:
    iccid: str
    activation_code: str
    matching_id: str | None
    eid: str | None
    confirmation_code: str | None


async def place_order(
    client: Es2Client,
    *,
    iccid: str | None = None,
    profile_type: str | None = None,
    eid: str | None = None,
    matching_id: str | None = None,
    confirmation_code: str | None = None,
    release: bool = True,
) -> OrderResult:
    """downloadOrder + confirmOrder; the activation code per SGP.22 4.1 (CC flag set when a code is needed).

    ``matching_id`` None lets the SM-DP+ generate one; "" is the default SM-DP+ use case (needs ``eid``)."""
    ordered = await client.call("downloadOrder", iccid=iccid, profileType=profile_type, eid=eid)
    confirmed = await client.call(
        "confirmOrder",
        iccid=ordered["iccid"],
        eid=eid,
        matchingId=matching_id,
        confirmationCode=confirmation_code,
        releaseFlag=release,
    )
    mid = confirmed.get("matchingId")
    code = ActivationCode(confirmed["smdpAddress"], mid or "", None, confirmation_code is not None)
    return OrderResult(ordered["iccid"], str(code), mid, confirmed.get("eid"), confirmation_code)


def write_qr(activation_code: str, directory: Path, name: str) -> list[Path]:
    import segno

    directory.mkdir(parents=True, exist_ok=True)
    qr = segno.make(activation_code, error="m")
    paths = [directory / f"{name}.png", directory / f"{name}.svg"]
    qr.save(str(paths[0]), scale=6, border=4)
    qr.save(str(paths[1]), scale=4, border=4)
    return paths


def _new_confirmation_code() -> str:
    return f"{secrets.randbelow(10**8):08d}"


async def cmd_order_new(args: argparse.Namespace) -> int:
    if not (args.iccid or args.profile_type):
        raise CliError("give --iccid or --profile-type")
    code = _new_confirmation_code() if args.confirmation_code == "auto" else args.confirmation_code
    async with client_from_args(args) as client:
        try:
            result = await place_order(
                client, iccid=args.iccid, profile_type=args.profile_type, eid=args.eid,
                matching_id="" if args.default_smdp else args.matching_id,
                confirmation_code=code, release=not args.no_release,
            )
        except Es2Error as exc:
            raise es2_failure(exc) from None
    if args.qr_dir:
        write_qr(result.activation_code, Path(args.qr_dir), result.iccid)
    text = f"{result.iccid}  {result.activation_code}" + (f"  (confirmation code {code})" if code else "")
    print_result(args, result.__dict__, text)
    return 0


async def cmd_order_batch(args: argparse.Namespace) -> int:
    """CSV in: profile_type or iccid, eid (optional), confirmation_code (yes/no). CSV out: one code per row."""
    try:
        with Path(args.csv).open(newline="", encoding="utf-8") as source:
            reader = csv.DictReader(source)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"cannot read {args.csv}: {getattr(exc, 'strerror', None) or exc}") from None
    if not columns & {"profile_type", "iccid"}:
        raise CliError(f"{args.csv}: no profile_type or iccid column (the header row names the columns: "
                       "profile_type,iccid,eid,confirmation_code)")  # fmt: skip
    out = Path(args.out)
    refuse_overwrite(out, "--out", args.force)
    qr_dir = Path(args.qr_dir) if args.qr_dir else None
    ok = failed = 0
    async with client_from_args(args) as client:
        with out.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n" if args.crlf else "\n")
            writer.writerow(["row", "iccid", "eid", "matching_id", "activation_code", "confirmation_code", "error"])
            for number, row in enumerate(rows, start=1):
                wants_cc = (row.get("confirmation_code") or "").strip().lower() in ("yes", "y", "true", "1")
                code = _new_confirmation_code() if wants_cc else None
                try:
                    result = await place_order(
                        client, iccid=(row.get("iccid") or None), profile_type=(row.get("profile_type") or None),
                        eid=(row.get("eid") or None), confirmation_code=code,
                    )
                except Es2Error as exc:
                    if exc.unreachable:  # every further row would fail the same way
                        handle.flush()
                        raise CliError(f"{exc} (row {number}; the rows before it are in {out})", EXIT_UNREACHABLE) from None
                    failed += 1
                    writer.writerow([number, row.get("iccid") or "", row.get("eid") or "", "", "", "", str(exc)])
                else:
                    ok += 1
                    writer.writerow(
                        [number, result.iccid, result.eid or "", result.matching_id or "", result.activation_code, code or "", ""]
                    )
                    if qr_dir is not None:
                        write_qr(result.activation_code, qr_dir, result.iccid)
                _progress(number, len(rows), failed)
    summary = {"rows": len(rows), "ordered": ok, "failed": failed, "out": str(out)}
    print_result(args, summary, f"{ok} ordered, {failed} failed of {len(rows)} rows; activation codes in {out}")
    return 0 if failed == 0 else 1


def _progress(done: int, total: int, failed: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({failed} failed)")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def cmd_order_simple(args: argparse.Namespace) -> int:
    """cancel / release one order."""
    fields: dict[str, Any] = {"iccid": args.iccid}
    if args.order_command == "cancel":
        fields.update(finalProfileStatusIndicator=args.final, eid=args.eid, matchingId=args.matching_id)
    function = {"cancel": "cancelOrder", "release": "releaseProfile"}[args.order_command]
    async with client_from_args(args) as client:
        try:
            await client.call(function, **fields)
        except Es2Error as exc:
            raise es2_failure(exc) from None
    print_result(args, {"iccid": args.iccid, "done": function}, f"{function}: {args.iccid} done")
    return 0


async def cmd_operator(args: argparse.Namespace) -> int:
    from smdp.cli import open_database
    from smdp.services.operators import OperatorError, add_operator, set_callback

    if args.operator_command == "callback":
        if args.url is not None and args.set is not None:
            raise CliError("give the callback URL once: --set URL", EXIT_USAGE)
        new_url = args.set if args.set is not None else args.url
        if new_url is not None and args.clear:
            raise CliError("give --set URL or --clear, not both", EXIT_USAGE)
        if args.ca_file and new_url is None:
            raise CliError("--ca-file needs --set URL (the CA is trusted for that URL)", EXIT_USAGE)
        if new_url is None and not args.clear:
            return await show_callback(args)
    ca_pem = None
    if getattr(args, "ca_file", None):
        try:
            ca_pem = Path(args.ca_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --ca-file {args.ca_file}: {getattr(exc, 'strerror', None) or exc}") from None
    db = await open_database(args)
    try:
        if args.operator_command == "add":
            token = await add_operator(db, args.name, args.callback_url)
            print_result(args, {"operator": args.name, "token": token}, f"operator {args.name} created; API token (shown once): {token}")
        else:
            url = None if args.clear else new_url
            await set_callback(db, args.name, url, ca_pem)
            ca_text = f", trusting the CA in {args.ca_file} and the system's" if ca_pem else ""
            print_result(args, {"operator": args.name, "callbackUrl": url, "callbackCa": ca_pem is not None},
                         f"operator {args.name}: callback {url or 'cleared'}{ca_text}")
    except OperatorError as exc:
        raise CliError(str(exc)) from None
    finally:
        await db.dispose()
    return 0


async def show_callback(args: argparse.Namespace) -> int:
    """``smdp operator callback NAME``: the callback URL and whether a CA of its own is trusted; changes nothing."""
    from smdp.cli import open_database
    from smdp.store.operators import operator_by_name

    db = await open_database(args)
    try:
        async with db.transaction() as session:
            operator = await operator_by_name(session, args.name)
    finally:
        await db.dispose()
    if operator is None:
        raise CliError(f"no operator {args.name!r}")
    url, has_ca = operator.callback_url, bool(operator.callback_ca)
    text = f"operator {args.name}: callback {url or 'none'}"
    if url:
        text += ", trusting a CA of its own and the system's" if has_ca else ", trusting the system's CAs"
    print_result(args, {"operator": args.name, "callbackUrl": url, "callbackCa": has_ca}, text)
    return 0


# --- smdp outbox -------------------------------------------------------------------------------------


def _when(moment: Any) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def outbox_row(event: Any, operator: str) -> dict[str, Any]:
    from smdp.store.outbox import event_state

    payload = event.payload or {}
    return {
        "id": event.id,
        "eventId": event.event_id,
        "operator": operator,
        "state": event_state(event),
        "notificationPointId": payload.get("notificationPointId"),
        "iccid": payload.get("iccid"),
        "attempts": event.attempts,
        "createdAt": _when(event.created_at),
        "nextAttemptAt": _when(event.next_attempt_at) if event_state(event) == "pending" else None,
        "deliveredAt": _when(event.delivered_at),
        "deadAt": _when(event.dead_at),
        "lastError": event.last_error,
    }


async def cmd_outbox_list(args: argparse.Namespace) -> int:
    from smdp.cli import open_database
    from smdp.store import operators, outbox

    db = await open_database(args)
    try:
        async with db.transaction() as session:
            operator_id = None
            if args.operator:
                operator = await operators.operator_by_name(session, args.operator)
                if operator is None:
                    raise CliError(f"no operator {args.operator!r}")
                operator_id = operator.id
            rows = [outbox_row(e, name) for e, name in
                    await outbox.list_events(session, operator_id=operator_id, state=args.state, limit=args.limit)]
    finally:
        await db.dispose()
    lines = [
        f"{r['id']:>6} {r['operator']:<12} {r['state']:<9} point {r['notificationPointId']!s:<2} {r['iccid'] or '-':<20} "
        f"attempts {r['attempts']:<3} {r['deliveredAt'] or r['deadAt'] or ('next ' + (r['nextAttemptAt'] or '-'))}"
        + (f"  {r['lastError']}" if r["lastError"] and r["state"] != "delivered" else "")
        for r in rows
    ]
    print_result(args, rows, "\n".join(lines) or "no events")
    return 0


async def cmd_outbox_retry(args: argparse.Namespace) -> int:
    from datetime import datetime

    from smdp.cli import open_database
    from smdp.store import outbox

    db = await open_database(args)
    try:
        async with db.transaction() as session:
            event = await outbox.event_by_ref(session, args.id)
            if event is None or event.id is None:
                raise CliError(f"no outbox event {args.id}")
            state = outbox.event_state(event)
            if not await outbox.retry_event(session, event.id, datetime.now(UTC)):
                raise CliError(f"outbox event {args.id} is {state}, not dead: nothing to retry")
    finally:
        await db.dispose()
    print_result(args, {"id": event.id, "eventId": event.event_id, "state": "pending"},
                 f"outbox event {event.id} ({event.event_id}) queued again")
    return 0


def add_outbox_commands(sub: Any, common: Any) -> None:
    """``smdp outbox list|retry``: the operator callbacks queued, delivered or given up (dead)."""
    from smdp.store.outbox import EVENT_STATES

    outbox = sub.add_parser("outbox", help="operator callbacks (HandleDownloadProgressInfo): list, retry dead ones")
    commands = outbox.add_subparsers(dest="outbox_command", required=True)
    lst = commands.add_parser("list", help="list events, oldest first (the newest --limit)")
    common(lst, database=True, json_output=True)
    lst.add_argument("--operator", help="only this operator's events")
    lst.add_argument("--state", choices=EVENT_STATES)
    lst.add_argument("--limit", type=int, default=100, help="at most this many (the newest; default 100)")
    lst.set_defaults(handler=cmd_outbox_list)
    retry = commands.add_parser("retry", help="queue a dead event again (dead → pending, a fresh attempt budget)")
    common(retry, database=True, json_output=True)
    retry.add_argument("id", help="the event's id (or its eventId, the functionCallIdentifier)")
    retry.set_defaults(handler=cmd_outbox_retry)


def add_commands(sub: Any, common: Any) -> None:
    def connection(parser: argparse.ArgumentParser) -> None:
        common(parser, json_output=True)
        parser.add_argument("--url", help="the SM-DP+ (default: the local server of --data-dir)")
        token = parser.add_mutually_exclusive_group()
        token.add_argument("--token", help="API token (visible to other local users: prefer --token-file or $SMDP_TOKEN; "
                                           "default: the local default operator's)")
        token.add_argument("--token-file", help="file holding the API token (its first line)")
        parser.add_argument("--operator", help="operator name, the functionRequesterIdentifier (default: default)")
        parser.add_argument("--client-cert", metavar="PEM", help="TLS client certificate (mutual TLS, SGP.22 2.6.6: a listener "
                                                               "with client_auth mtls or both); its key too unless --client-key")
        parser.add_argument("--client-key", metavar="PEM", help="the private key of --client-cert")
        trust = parser.add_mutually_exclusive_group()
        trust.add_argument("--ca", help="CA certificate of the server's TLS certificate")
        trust.add_argument("--insecure", action="store_true", help="don't verify the server's TLS certificate")

    order = sub.add_parser("order", help="ES2+ orders: activation codes and QR codes").add_subparsers(dest="order_command", required=True)
    new = order.add_parser("new", help="order one profile (downloadOrder + confirmOrder)")
    connection(new)
    new.add_argument("--iccid")
    new.add_argument("--profile-type")
    new.add_argument("--eid")
    new.add_argument("--matching-id", help="default: generated by the SM-DP+")
    new.add_argument("--default-smdp", action="store_true", help="no matching ID: the EID's default SM-DP+ order")
    new.add_argument("--confirmation-code", help="a code, or 'auto' to generate one")
    new.add_argument("--no-release", action="store_true", help="confirm only; release later with `smdp order release`")
    new.add_argument("--qr-dir", help="write ICCID.png and ICCID.svg there")
    new.set_defaults(handler=cmd_order_new)
    batch = order.add_parser("batch", help="orders from a CSV (profile_type or iccid, eid, confirmation_code yes/no)")
    connection(batch)
    batch.add_argument("csv")
    batch.add_argument("--out", required=True, help="CSV of activation codes to write (LF line endings)")
    batch.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    batch.add_argument("--crlf", action="store_true", help="CRLF line endings (RFC 4180) in --out")
    batch.add_argument("--qr-dir", help="folder for QR images (PNG and SVG)")
    batch.set_defaults(handler=cmd_order_batch)
    cancel = order.add_parser("cancel", help="cancelOrder")
    connection(cancel)
    cancel.add_argument("iccid")
    cancel.add_argument("--final", choices=["Available", "Unavailable"], default="Available")
    cancel.add_argument("--eid")
    cancel.add_argument("--matching-id")
    cancel.set_defaults(handler=cmd_order_simple)
    release = order.add_parser("release", help="releaseProfile")
    connection(release)
    release.add_argument("iccid")
    release.set_defaults(handler=cmd_order_simple)

    operator = sub.add_parser("operator", help="operator accounts of a local server").add_subparsers(dest="operator_command", required=True)
    add = operator.add_parser("add", help="create an operator and print its API token")
    common(add, database=True, json_output=True)
    add.add_argument("name")
    add.add_argument("--callback-url", help="base URL of its ES2+ endpoint for HandleDownloadProgressInfo")
    add.set_defaults(handler=cmd_operator)
    callback = operator.add_parser(
        "callback", help="show an operator's callback URL; --set URL or --clear change it (https; http only to a loopback host)"
    )
    common(callback, database=True, json_output=True)
    callback.add_argument("name")
    callback.add_argument("url", nargs="?", help="same as --set URL")
    change = callback.add_mutually_exclusive_group()
    change.add_argument("--set", metavar="URL", help="set the callback URL (base URL of its ES2+ endpoint)")
    change.add_argument("--clear", action="store_true", help="remove the callback URL (and its CA)")
    callback.add_argument(
        "--ca-file", help="with --set: PEM CA certificate(s) to trust for this URL besides the system's (default: the system's only)"
    )
    callback.set_defaults(handler=cmd_operator)
