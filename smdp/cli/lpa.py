"""``smdp lpa ...``: the test LPA driving the virtual eUICC (download, list, notifications, enable,
disable, delete, nickname). ``--euicc-cert/--euicc-key/--eum-cert/--ci-cert`` present other
certificates than the PKI manifest's, for certificate negative tests."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from smdp.cli import EXIT_USAGE, CliError, print_result, settings_of


def open_virtual_euicc(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from smdp.euicc.euicc import VirtualEuicc
    from smdp.euicc.state import StateError
    from smdp.pki.store import PkiConfigError

    settings = settings_of(args, must_exist=not args.euicc)  # the default state file is in the data directory
    path = Path(args.euicc) if args.euicc else settings.euicc_dir / f"{args.curve}.json"
    if args.euicc and not path.parent.is_dir():
        raise CliError(f"--euicc {path}: no directory {path.parent}", EXIT_USAGE)
    if not path.exists() and not settings.pki_manifest.exists():
        raise CliError(f"no PKI manifest at {settings.pki_manifest}: run `smdp serve` or `smdp pki init` first")
    identity = identity_from_args(args)
    try:
        return VirtualEuicc.open(path, manifest=settings.pki_manifest, curve=args.curve, identity=identity)
    except PkiConfigError as exc:
        raise CliError(f"eUICC identity: {exc}") from None
    except StateError as exc:
        if identity is not None and identity.euicc_cert is not None:
            # The usual cause: a certificate with another EID against the default state file.
            raise CliError(f"{exc} (--euicc-cert {identity.euicc_cert} is another eUICC: give it its own --euicc FILE)") from None
        raise


def add_identity_options(parser: argparse.ArgumentParser) -> None:
    """--euicc-cert/--euicc-key/--eum-cert/--ci-cert: another identity for certificate negative tests."""
    group = parser.add_argument_group(
        "eUICC identity", "present these instead of the PKI manifest's (certificate negative tests; not remembered)"
    )
    group.add_argument("--euicc-cert", metavar="FILE", help="eUICC certificate, PEM or DER (another EID needs its own --euicc)")
    group.add_argument("--euicc-key", metavar="FILE", help="the eUICC certificate's private key (PEM)")
    group.add_argument("--eum-cert", metavar="FILE", help="EUM certificate, PEM or DER (e.g. expired, or from another CI)")
    group.add_argument("--ci-cert", metavar="FILE", action="append",
                       help="a CI certificate the eUICC trusts, instead of the manifest's (repeatable)")  # fmt: skip


def identity_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The identity files the command line names, or None (each file must exist: a usage error)."""
    from smdp.euicc.credentials import IdentityFiles

    given: dict[str, Path | None] = {}
    for flag in ("euicc_cert", "euicc_key", "eum_cert"):
        value = getattr(args, flag, None)
        given[flag] = Path(value) if value else None
    ci = tuple(Path(v) for v in (getattr(args, "ci_cert", None) or []))
    for flag, path in [*given.items(), *(("ci_cert", p) for p in ci)]:
        if path is not None and not path.is_file():
            raise CliError(f"--{flag.replace('_', '-')} {path}: no such file", EXIT_USAGE)
    files = IdentityFiles(given["euicc_cert"], given["euicc_key"], given["eum_cert"], ci)
    return files if files else None


def es9_client_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from smdp.lpa.es9client import Es9Client
    from smdp.pki.store import load_server_credentials

    if args.insecure:
        return Es9Client(insecure=True)
    if args.ca:
        if not Path(args.ca).is_file():
            raise CliError(f"--ca {args.ca}: no such file", EXIT_USAGE)
        return Es9Client(ca_file=Path(args.ca))
    manifest = settings_of(args, must_exist=False).pki_manifest
    ca = load_server_credentials(manifest).tls_ca_cert_path if manifest.exists() else None
    return Es9Client(ca_file=ca)


async def cmd_lpa_download(args: argparse.Namespace) -> int:
    from smdp.lpa.download import download

    euicc = open_virtual_euicc(args)
    async with es9_client_from_args(args) as client:
        result = await download(
            euicc, args.activation_code, confirmation_code=args.confirmation_code, client=client, cancel_at=args.cancel_at
        )
    print(json.dumps(result.to_json(), indent=None if args.json else 2))  # JSON either way; --json: one line
    if result.ok:
        return 0
    from smdp.cli import EXIT_FAILED, EXIT_UNREACHABLE

    unreachable = result.subject_code is None and (result.message or "").startswith("HTTP transport failed")
    return EXIT_UNREACHABLE if unreachable else EXIT_FAILED


async def cmd_lpa_list(args: argparse.Namespace) -> int:
    rows = [
        {"iccid": p.iccid, "state": p.state, "name": p.profile_name, "serviceProvider": p.service_provider_name,
         "nickname": p.nickname}
        for p in open_virtual_euicc(args).installed_profiles()
    ]  # fmt: skip
    lines = [f"{r['iccid']:<20} {r['state']:<9} {r['name']}" + (f" ({r['nickname']})" if r["nickname"] else "") for r in rows]
    print_result(args, rows, "\n".join(lines) or "no profiles installed")
    return 0


async def cmd_lpa_notifications(args: argparse.Namespace) -> int:
    from smdp.lpa import es10
    from smdp.lpa.download import process_notifications

    euicc = open_virtual_euicc(args)
    if not args.send:
        pending = es10.list_notifications(euicc)
        rows = [{"seqNumber": n.seq_number, "event": n.event, "address": n.address, "iccid": n.iccid} for n in pending]
        lines = [f"{r['seqNumber']:>4} {r['event']:<8} {r['iccid'] or '-':<20} {r['address']}" for r in rows]
        print_result(args, rows, "\n".join(lines) or "no pending notifications")
        return 0
    async with es9_client_from_args(args) as client:
        deliveries = await process_notifications(euicc, client)
    rows = [{"seqNumber": d.seq_number, "event": d.event, "delivered": d.delivered, "error": d.error} for d in deliveries]
    lines = [f"{r['seqNumber']:>4} {r['event']:<8} {'delivered' if r['delivered'] else r['error']}" for r in rows]
    print_result(args, rows, "\n".join(lines) or "nothing to send")
    return 0 if all(d.delivered for d in deliveries) else 1


# --- ES10c: enable, disable, delete, nickname -------------------------------------------------------

_DONE = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}


def _profile_state(euicc: Any, identifier: str) -> str:
    wanted = identifier.upper()
    found = next((p for p in euicc.installed_profiles() if wanted in (p.iccid, p.isdp_aid)), None)
    return found.state if found is not None else "deleted"


async def cmd_lpa_manage(args: argparse.Namespace) -> int:
    """ES10c.EnableProfile / DisableProfile / DeleteProfile, then the Notifications they created go
    to the SM-DP+ (as `lpa notifications --send`), unless --no-send keeps them pending."""
    from smdp.lpa import es10

    operation = args.lpa_command
    euicc = open_virtual_euicc(args)
    try:
        if operation == "enable":
            result = es10.enable_profile(euicc, args.profile, refresh=args.refresh)
        elif operation == "disable":
            result = es10.disable_profile(euicc, args.profile, refresh=args.refresh)
        else:
            result = es10.delete_profile(euicc, args.profile)
    except es10.ProfileOperationError as exc:  # pragma: no cover - the functions return codes
        raise CliError(str(exc)) from None
    except es10.Es10Error as exc:
        raise CliError(f"{operation} {args.profile}: {exc}", EXIT_USAGE) from None
    value: dict[str, Any] = {
        "operation": operation,
        "profile": args.profile,
        "ok": result.ok,
        "result": result.label,
        "resultCode": int(result),
        "state": _profile_state(euicc, args.profile),
    }
    if not result.ok:
        return _refused(args, value, f"{operation} {args.profile}: the eUICC refused: {result}")
    return await _notify(args, euicc, value, f"{_DONE[operation]} {args.profile}")


async def cmd_lpa_nickname(args: argparse.Namespace) -> int:
    """ES10c.SetNickname; no name (or an empty one) clears it. No Notification is involved."""
    from smdp.lpa import es10

    nickname = args.name or ""
    if len(nickname) > es10.MAX_NICKNAME:
        raise CliError(f"a nickname has at most {es10.MAX_NICKNAME} characters (SGP.22 5.7.21), not {len(nickname)}", EXIT_USAGE)
    euicc = open_virtual_euicc(args)
    try:
        result = es10.set_nickname(euicc, args.iccid, nickname)
    except es10.Es10Error as exc:
        raise CliError(f"nickname {args.iccid}: {exc}", EXIT_USAGE) from None
    value: dict[str, Any] = {
        "operation": "nickname",
        "profile": args.iccid,
        "ok": result.ok,
        "result": result.label,
        "resultCode": int(result),
        "nickname": nickname or None,
    }
    if not result.ok:
        return _refused(args, value, f"nickname {args.iccid}: the eUICC refused: {result}")
    print_result(args, value, f"nickname of {args.iccid} set to {nickname!r}" if nickname else f"nickname of {args.iccid} cleared")
    return 0


def _refused(args: argparse.Namespace, value: dict[str, Any], message: str) -> int:
    """Exit 1 with the eUICC's result code by its SGP.22 name (and the whole answer with --json)."""
    from smdp.cli import EXIT_FAILED

    print(f"smdp: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({**value, "error": message, "code": EXIT_FAILED}))
    return EXIT_FAILED


async def _notify(args: argparse.Namespace, euicc: Any, value: dict[str, Any], done: str) -> int:
    """Deliver the pending Notifications (or list them with --no-send) and report. The operation is
    done whatever happens here: a Notification that cannot be delivered stays pending on the eUICC."""
    from smdp.cli import EXIT_FAILED, EXIT_UNREACHABLE
    from smdp.lpa import es10
    from smdp.lpa.download import process_notifications

    if args.no_send:
        pending = es10.list_notifications(euicc)
        value["notifications"] = [
            {"seqNumber": n.seq_number, "event": n.event, "address": n.address, "iccid": n.iccid, "delivered": False}
            for n in pending
        ]
        lines = [done] + [f"{n.seq_number:>4} {n.event:<8} pending for {n.address}" for n in pending]
        print_result(args, value, "\n".join(lines))
        return 0
    async with es9_client_from_args(args) as client:
        deliveries = await process_notifications(euicc, client)
    value["notifications"] = [
        {"seqNumber": d.seq_number, "event": d.event, "address": d.address, "iccid": d.iccid,
         "delivered": d.delivered, "error": d.error}
        for d in deliveries
    ]  # fmt: skip
    lines = [done] + [
        f"{d.seq_number:>4} {d.event:<8} {'delivered to ' + d.address if d.delivered else d.error}" for d in deliveries
    ]
    print_result(args, value, "\n".join(lines))
    failed = [d for d in deliveries if not d.delivered]
    if not failed:
        return 0
    code = EXIT_UNREACHABLE if any(d.unreachable for d in failed) else EXIT_FAILED
    why = "could not reach" if code == EXIT_UNREACHABLE else "was refused by"
    print(f"smdp: {done} on the eUICC, but {len(failed)} notification(s) {why} the SM-DP+ ({failed[0].error}); "
          "they stay pending: `smdp lpa notifications --send` retries", file=sys.stderr)  # fmt: skip
    return code


def add_commands(sub: Any, common: Any) -> None:
    def _lpa_common(parser: argparse.ArgumentParser) -> None:
        common(parser)
        parser.add_argument("--euicc", help="virtual eUICC state file (default: DATA_DIR/euicc/CURVE.json)")
        parser.add_argument("--curve", choices=["nist", "brainpool"], default="nist", help="the eUICC's key curve")
        trust = parser.add_mutually_exclusive_group()
        trust.add_argument("--ca", help="CA certificate that issued the server's TLS certificate (default: the PKI's)")
        trust.add_argument("--insecure", action="store_true", help="don't verify the server's TLS certificate")
        add_identity_options(parser)

    lpa = sub.add_parser("lpa", help="the test LPA driving the virtual eUICC").add_subparsers(dest="lpa_command", required=True)
    dl = lpa.add_parser("download", help="download a profile with an activation code")
    _lpa_common(dl)
    dl.add_argument("activation_code", help="LPA:1$<host:port>$<matching ID>")
    dl.add_argument("--confirmation-code")
    dl.add_argument("--cancel-at", choices=["authenticateClient", "prepareDownload", "getBoundProfilePackage"],
                    help="cancel the session on purpose after this step")
    dl.add_argument("--json", action="store_true", help="the result on one line (it is JSON anyway)")
    dl.set_defaults(handler=cmd_lpa_download)
    ls = lpa.add_parser("list", help="profiles installed in the virtual eUICC")
    _lpa_common(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_lpa_list)
    nt = lpa.add_parser("notifications", help="pending notifications (--send delivers them)")
    _lpa_common(nt)
    nt.add_argument("--send", action="store_true")
    nt.add_argument("--json", action="store_true")
    nt.set_defaults(handler=cmd_lpa_notifications)
    for name, what in (("enable", "enable a profile (ES10c.EnableProfile; the enabled one, if any, is disabled)"),
                       ("disable", "disable a profile (ES10c.DisableProfile)"),
                       ("delete", "delete a disabled profile (ES10c.DeleteProfile)")):  # fmt: skip
        op = lpa.add_parser(name, help=what, description=f"{what[0].upper()}{what[1:]}, then deliver the pending "
                            "notifications to the SM-DP+ (exit 3 if it cannot be reached: the operation is still done).")  # fmt: skip
        _lpa_common(op)
        op.add_argument("profile", metavar="ICCID", help="the profile's ICCID (or its ISD-P AID, 32 hex digits)")
        if name != "delete":
            op.add_argument("--refresh", action="store_true", help="set refreshFlag (default: not set, as lpac sends it)")
        op.add_argument("--no-send", action="store_true", help="leave the notifications pending on the eUICC")
        op.add_argument("--json", action="store_true")
        op.set_defaults(handler=cmd_lpa_manage)
    nick = lpa.add_parser("nickname", help="set a profile's nickname (ES10c.SetNickname); no NAME clears it")
    _lpa_common(nick)
    nick.add_argument("iccid", metavar="ICCID")
    nick.add_argument("name", metavar="NAME", nargs="?", help="at most 64 characters; absent or empty: clear it")
    nick.add_argument("--json", action="store_true")
    nick.set_defaults(handler=cmd_lpa_nickname)
    from smdp.cli import policy as policy_commands

    policy_commands.add_commands(lpa, _lpa_common)

