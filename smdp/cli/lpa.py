"""``smdp lpa ...``: the test LPA driving the virtual eUICC (download, list, notifications)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from smdp.cli import EXIT_USAGE, CliError, print_result, settings_of


def open_virtual_euicc(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from smdp.euicc.euicc import VirtualEuicc

    settings = settings_of(args, must_exist=not args.euicc)  # the default state file is in the data directory
    path = Path(args.euicc) if args.euicc else settings.euicc_dir / f"{args.curve}.json"
    if args.euicc and not path.parent.is_dir():
        raise CliError(f"--euicc {path}: no directory {path.parent}", EXIT_USAGE)
    if not path.exists() and not settings.pki_manifest.exists():
        raise CliError(f"no PKI manifest at {settings.pki_manifest}: run `smdp serve` or `smdp pki init` first")
    return VirtualEuicc.open(path, manifest=settings.pki_manifest, curve=args.curve)


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
    print(json.dumps(result.to_json(), indent=2))
    if result.ok:
        return 0
    from smdp.cli import EXIT_FAILED, EXIT_UNREACHABLE

    unreachable = result.subject_code is None and (result.message or "").startswith("HTTP transport failed")
    return EXIT_UNREACHABLE if unreachable else EXIT_FAILED


async def cmd_lpa_list(args: argparse.Namespace) -> int:
    rows = [
        {"iccid": p.iccid, "state": p.state, "name": p.profile_name, "serviceProvider": p.service_provider_name}
        for p in open_virtual_euicc(args).installed_profiles()
    ]
    lines = [f"{r['iccid']:<20} {r['state']:<9} {r['name']}" for r in rows]
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



def add_commands(sub: Any, common: Any) -> None:
    def _lpa_common(parser: argparse.ArgumentParser) -> None:
        common(parser)
        parser.add_argument("--euicc", help="virtual eUICC state file (default: DATA_DIR/euicc/CURVE.json)")
        parser.add_argument("--curve", choices=["nist", "brainpool"], default="nist", help="the eUICC's key curve")
        trust = parser.add_mutually_exclusive_group()
        trust.add_argument("--ca", help="CA certificate that issued the server's TLS certificate (default: the PKI's)")
        trust.add_argument("--insecure", action="store_true", help="don't verify the server's TLS certificate")

    lpa = sub.add_parser("lpa", help="the test LPA driving the virtual eUICC").add_subparsers(dest="lpa_command", required=True)
    dl = lpa.add_parser("download", help="download a profile with an activation code")
    _lpa_common(dl)
    dl.add_argument("activation_code", help="LPA:1$<host:port>$<matching ID>")
    dl.add_argument("--confirmation-code")
    dl.add_argument("--cancel-at", choices=["authenticateClient", "prepareDownload", "getBoundProfilePackage"],
                    help="cancel the session on purpose after this step")
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
    from smdp.cli import policy as policy_commands

    policy_commands.add_commands(lpa, _lpa_common)

