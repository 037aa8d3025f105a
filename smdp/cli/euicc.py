"""``smdp euicc ...``: the virtual eUICC as a card (SGP.22 5.7.1 over APDUs) for other LPAs.

``smdp euicc lpac -- ARGS`` runs lpac against it through lpac's stdio APDU driver, ``smdp euicc
serve --socket ADDRESS`` offers it on a local socket (vpcd/vpicc framing), ``smdp euicc info``
says which eUICC a state file holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from smdp.cli import EXIT_UNREACHABLE, EXIT_USAGE, CliError, print_result
from smdp.cli.lpa import add_identity_options, open_virtual_euicc


def _card(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from smdp.euicc.apdu import IsdrCard

    return IsdrCard(open_virtual_euicc(args))


async def cmd_euicc_lpac(args: argparse.Namespace) -> int:
    from smdp.euicc.lpac import LpacNotFound, find_lpac, run_lpac

    arguments = list(args.lpac_args)
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if not arguments:
        raise CliError("no lpac arguments: smdp euicc lpac [options] -- chip info", EXIT_USAGE)
    try:
        lpac = find_lpac(args.lpac)
    except LpacNotFound as exc:
        raise CliError(str(exc)) from None
    return await run_lpac(_card(args), lpac, arguments)


async def cmd_euicc_serve(args: argparse.Namespace) -> int:
    from smdp.euicc.socket import connect_out, parse_address, serve_card

    card = _card(args)
    if args.connect:
        host, _, port = args.connect.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CliError(f"--connect {args.connect!r}: give HOST:PORT", EXIT_USAGE)
        try:
            count = await connect_out(card, host or "127.0.0.1", int(port))
        except OSError as exc:
            raise CliError(f"--connect {args.connect}: cannot connect: {exc.strerror or exc}", EXIT_UNREACHABLE) from None
        print(f"smdp: reader disconnected after {count} APDUs")
        return 0
    try:
        address = parse_address(args.socket)
    except ValueError as exc:
        raise CliError(f"--socket: {exc}", EXIT_USAGE) from None
    try:
        server = await serve_card(card, address)
    except OSError as exc:
        raise CliError(f"--socket {args.socket}: cannot listen: {exc.strerror or exc}") from None
    if address.kind == "tcp":
        host, port = server.sockets[0].getsockname()[:2]
        shown = f"tcp:{host}:{port}"
    else:
        shown = str(address)
    print(f"smdp: virtual eUICC {card.euicc.eid} listening on {shown} (vpcd framing)", flush=True)
    async with server:
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()
    return 0


async def cmd_euicc_info(args: argparse.Namespace) -> int:
    euicc = open_virtual_euicc(args)
    value: dict[str, Any] = {
        "eid": euicc.eid,
        "state": str(euicc.state_path),
        "profiles": [{"iccid": p.iccid, "state": p.state, "nickname": p.nickname} for p in euicc.installed_profiles()],
        "pendingNotifications": len(euicc.pending_notifications()),
    }
    text = "\n".join(
        [f"EID {value['eid']}", f"state {value['state']}"]
        + [f"profile {p['iccid']} {p['state']}" + (f" ({p['nickname']})" if p["nickname"] else "") for p in value["profiles"]]
        + [f"{value['pendingNotifications']} pending notification(s)"]
    )
    print_result(args, value, text)
    return 0


def add_commands(sub: Any, common: Any) -> None:
    def _euicc_common(parser: argparse.ArgumentParser) -> None:
        common(parser)
        parser.add_argument("--euicc", help="virtual eUICC state file (default: DATA_DIR/euicc/CURVE.json)")
        parser.add_argument("--curve", choices=["nist", "brainpool"], default="nist", help="the eUICC's key curve")
        add_identity_options(parser)

    euicc = sub.add_parser("euicc", help="the virtual eUICC as a card for other LPAs (lpac, sockets)")
    commands = euicc.add_subparsers(dest="euicc_command", required=True)
    lpac = commands.add_parser(
        "lpac",
        help="run lpac against the virtual eUICC (lpac's stdio APDU driver, curl for ES9+)",
        description="Runs lpac with LPAC_APDU=stdio and LPAC_HTTP=curl, answers its APDUs from the virtual "
        "eUICC, prints lpac's own JSON lines unchanged and exits with lpac's status.",
    )
    _euicc_common(lpac)
    lpac.add_argument("--lpac", help="the lpac binary (default: $LPAC, else lpac on PATH)")
    lpac.add_argument("lpac_args", nargs=argparse.REMAINDER, help="-- then lpac's arguments, e.g. -- chip info")
    lpac.set_defaults(handler=cmd_euicc_lpac)
    serve = commands.add_parser("serve", help="offer the card interface on a local socket (vpcd/vpicc framing)")
    _euicc_common(serve)
    where = serve.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="listen on tcp:127.0.0.1:PORT (0: any free port) or unix:PATH")
    where.add_argument("--connect", metavar="HOST:PORT", help="connect to a listening vpcd instead")
    serve.set_defaults(handler=cmd_euicc_serve)
    info = commands.add_parser("info", help="the virtual eUICC's EID, profiles and pending notifications")
    _euicc_common(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=cmd_euicc_info)


__all__ = ["add_commands", "cmd_euicc_info", "cmd_euicc_lpac", "cmd_euicc_serve"]
