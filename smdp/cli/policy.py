"""``smdp lpa policy|usage|networks``: the test device reads a Profile's travel policy back from the
virtual eUICC and simulates its enforcement (smdp.lpa.policy, smdp.lpa.usage)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smdp.cli import EXIT_OK, EXIT_POLICY, CliError, print_result


def _read(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from smdp.cli.lpa import open_virtual_euicc
    from smdp.lpa.es10 import Es10Error
    from smdp.lpa.policy import read_policy

    euicc = open_virtual_euicc(args)
    profile = next((p for p in euicc.installed_profiles() if p.iccid == args.iccid), None)
    if profile is None:
        raise CliError(f"no Profile with ICCID {args.iccid} in {euicc.state_path}")
    try:
        return euicc, read_policy(euicc, args.iccid, profile.elements)
    except Es10Error as exc:
        raise CliError(str(exc)) from None


def _require_policy(view: Any) -> Any:
    if view.policy is None:
        raise CliError(f"Profile {view.iccid} carries no travel policy in its metadata")
    return view.policy


async def cmd_lpa_policy(args: argparse.Namespace) -> int:
    _, view = _read(args)
    files = view.files
    result = {
        "iccid": view.iccid,
        "policy": view.policy.to_json() if view.policy else None,
        "usim": {
            "home": files.home.plmn if files.home else None,
            "oplmnwact": [{"plmn": f"{e.mcc}-{e.mnc}", "access": list(e.access_technologies)} for e in files.oplmnwact],
            "fplmn": [n.plmn for n in files.fplmn],
        },
        "disagreements": view.disagreements(),
    }
    lines = [f"Profile {view.iccid}: " + (f"policy {view.policy.name!r}" if view.policy else "no policy in its metadata")]
    if view.policy:
        for cap in view.policy.caps:
            scope = cap.scope.kind if cap.scope.kind != "countries" else "countries " + ",".join(cap.scope.countries)
            action = f"throttle to {cap.throttle_kbps} kbit/s" if cap.action == "throttle" else cap.action
            lines.append(f"  cap {cap.name!r}: {cap.limit_bytes:,} bytes per {cap.period}, {scope}, alerts "
                         f"{'/'.join(map(str, cap.alerts)) or '-'} %, at the cap: {action}")  # fmt: skip
        bg = view.policy.background
        lines.append(f"  Wi-Fi only: {', '.join(bg.wifi_only) or '-'}; background data while roaming: "
                     f"{'yes' if bg.allow_while_roaming else 'no'}")  # fmt: skip
        for country in view.policy.steering:
            lines.append(f"  country {country.mcc}: data roaming {'on' if country.data_roaming else 'off'}; preferred "
                         f"{' > '.join(p.network.plmn for p in country.preferred) or '-'}; forbidden "
                         f"{', '.join(n.plmn for n in country.forbidden) or '-'}")  # fmt: skip
    lines.append(f"  USIM: home {result['usim']['home'] or '-'}; EF.OPLMNwACT "
                 f"{' > '.join(e['plmn'] for e in result['usim']['oplmnwact']) or '-'}; EF.FPLMN "
                 f"{', '.join(result['usim']['fplmn']) or '-'}")  # fmt: skip
    lines.append("  metadata and USIM files agree" if not result["disagreements"] else "  DISAGREE: " + "; ".join(result["disagreements"]))
    print_result(args, result, "\n".join(lines))
    return 0


def _now(args: argparse.Namespace) -> datetime:
    if not args.at:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(args.at)
    except ValueError:
        raise CliError(f"--at {args.at!r} is not an ISO 8601 date/time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def cmd_lpa_usage(args: argparse.Namespace) -> int:
    from smdp.lpa.usage import UsageLedger, format_bytes
    from smdp.profiles.policy import Network, PolicyError, parse_quantity

    euicc, view = _read(args)
    policy = _require_policy(view)
    ledger = UsageLedger(Path(args.ledger) if args.ledger else euicc.state_path.with_suffix(".usage.json"))
    now = _now(args)
    if args.lift:
        messages = ledger.lift(args.iccid, policy, now=now)
        print_result(args, {"messages": messages, "caps": ledger.status(args.iccid, policy, now)}, "\n".join(messages))
        return 0
    if args.add is None:
        rows = ledger.status(args.iccid, policy, now)
        print_result(args, rows, "\n".join(f"{r['cap']:<20} {format_bytes(r['used']):>10} of {format_bytes(r['limit']):<8} "
                                           f"{r['percent']:>5}% {r['state']}" for r in rows) or "no caps")  # fmt: skip
        return 0
    try:
        amount = parse_quantity(args.add, "--add")
        roaming = Network.parse(args.roaming, "--roaming", digits=True) if args.roaming else None
    except PolicyError as exc:
        raise CliError(str(exc)) from None
    if roaming is not None and view.files.home is not None and roaming == view.files.home:
        roaming = None  # attached to the home network: not roaming
    result = ledger.record(args.iccid, policy, amount, now=now, roaming=roaming,
                           app_category=args.app_category, background=args.background)  # fmt: skip
    lines = [(f"used {format_bytes(result.delivered)} of {format_bytes(amount)} requested"
             f"{' roaming on ' + roaming.plmn if roaming else ' at home'}"), *result.messages]  # fmt: skip
    lines += [f"  {r['cap']:<20} {format_bytes(r['used']):>10} of {format_bytes(r['limit']):<8} {r['percent']:>5}% {r['state']}"
              for r in result.caps]  # fmt: skip
    print_result(args, result.to_json(), "\n".join(lines))
    return EXIT_OK if result.refused == 0 else EXIT_POLICY  # not EXIT_FAILED: the command itself worked


async def cmd_lpa_networks(args: argparse.Namespace) -> int:
    from smdp.lpa.policy import choose_network
    from smdp.profiles.policy import Network, PolicyError

    _, view = _read(args)
    try:
        available = [Network.parse(n.strip(), "--available", digits=True) for n in args.available.split(",") if n.strip()]
    except PolicyError as exc:
        raise CliError(str(exc)) from None
    if not available:
        raise CliError("--available names no network")
    stray = [n.plmn for n in available if n.mcc != args.country]
    if stray:
        raise CliError(f"--available {', '.join(stray)} not in country {args.country}")
    choice = choose_network(view, args.country, available)
    lines = [f"{plmn:<8} {verdict}" for plmn, verdict in choice.verdicts.items()]
    lines.append(f"-> {choice.chosen.plmn if choice.chosen else 'none'}: {choice.reason}")
    if choice.chosen is not None and not choice.data_roaming:
        lines.append(f"   mobile data off: the policy does not allow data roaming in {args.country}")
    print_result(args, choice.to_json(), "\n".join(lines))
    return EXIT_OK if choice.chosen is not None else EXIT_POLICY  # no service: every network is forbidden


def add_commands(lpa: Any, lpa_common: Any) -> None:
    pol = lpa.add_parser("policy", help="a Profile's travel policy as the device reads it back")
    lpa_common(pol)
    pol.add_argument("iccid")
    pol.add_argument("--json", action="store_true")
    pol.set_defaults(handler=cmd_lpa_policy)

    use = lpa.add_parser("usage", help="simulate mobile data usage under the Profile's policy (exit 4: traffic refused)")
    lpa_common(use)
    use.add_argument("iccid")
    action = use.add_mutually_exclusive_group()
    action.add_argument("--add", metavar="AMOUNT", help="use this much mobile data, e.g. 700MB")
    action.add_argument("--lift", action="store_true", help="lift a suspension/throttle for the current period")
    use.add_argument("--roaming", metavar="MCCMNC", help="visited network (e.g. 42602); default: at home")
    use.add_argument("--app-category", help="the app category using the data (e.g. video)")
    use.add_argument("--background", action="store_true", help="background traffic")
    use.add_argument("--at", help="simulated time (ISO 8601), to step into a new period")
    use.add_argument("--ledger", help="usage ledger file (default: next to the eUICC state)")
    use.add_argument("--json", action="store_true")
    use.set_defaults(handler=cmd_lpa_usage)

    net = lpa.add_parser("networks", help="which network the device would choose in a country, and why (exit 4: no service)")
    lpa_common(net)
    net.add_argument("iccid")
    net.add_argument("--country", required=True, help="MCC of the visited country")
    net.add_argument("--available", required=True, help="comma-separated MCCMNCs in range, e.g. 42601,42604")
    net.add_argument("--json", action="store_true")
    net.set_defaults(handler=cmd_lpa_networks)



