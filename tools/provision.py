#!/usr/bin/env python3
"""Example provisioning script: order eSIM profiles over ES2+ and hand out activation codes and QR codes.

    python tools/provision.py --data-dir DIR --profile-type travel --count 3 --out codes/

Against the local `smdp serve --data-dir DIR` it uses the default operator the server created; for another
SM-DP+ pass --url, --token and --operator.  Each order is downloadOrder + confirmOrder (release at once),
with a confirmation code when --with-code is given.  OUT/codes.csv gets each row as soon as it is ordered
(LF line endings; --crlf for RFC 4180), so the codes ordered before a failure (no stock left, the server
gone) are kept; it is not overwritten without --force.  Errors are one line: ``provision: message``.
"""

import argparse
import asyncio
import csv
import secrets
import sys
from pathlib import Path

from smdp.cli import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError, order
from smdp.operator_client import Es2Error


async def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    codes = out / "codes.csv"
    if codes.exists() and not args.force:
        raise CliError(f"--out {out}: {codes} exists; pass --force to overwrite it", EXIT_USAGE)
    if args.count < 1:
        raise CliError(f"--count must be at least 1, got {args.count}", EXIT_USAGE)
    client = order.client_from_args(args)
    out.mkdir(parents=True, exist_ok=True)
    ordered = 0
    async with client:
        with codes.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n" if args.crlf else "\n")
            writer.writerow(["iccid", "activation_code", "confirmation_code"])
            handle.flush()
            for _ in range(args.count):
                code = f"{secrets.randbelow(10**8):08d}" if args.with_code else None
                try:
                    placed = await order.place_order(client, profile_type=args.profile_type, confirmation_code=code)
                except Es2Error as exc:
                    kept = f"; the {ordered} ordered before are in {codes}" if ordered else ""
                    raise CliError(f"order {ordered + 1} of {args.count} failed: {exc}{kept}",
                                   EXIT_UNREACHABLE if exc.unreachable else EXIT_FAILED) from None
                writer.writerow([placed.iccid, placed.activation_code, code or ""])
                handle.flush()
                ordered += 1
                order.write_qr(placed.activation_code, out, placed.iccid)
                print(f"{placed.iccid}  {placed.activation_code}" + (f"  code {code}" if code else ""), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--operator")
    parser.add_argument("--profile-type", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--with-code", action="store_true", help="protect each order with a confirmation code")
    parser.add_argument("--out", default="codes", help="folder for codes.csv and the QR images")
    parser.add_argument("--force", action="store_true", help="overwrite OUT/codes.csv if it exists")
    parser.add_argument("--crlf", action="store_true", help="CRLF line endings (RFC 4180) in codes.csv")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    args = parser.parse_args()
    args.pki, args.ca, args.insecure, args.json, args.token_file = None, None, False, False, None
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        code = exc.code if isinstance(exc, CliError) else EXIT_FAILED
        print(f"provision: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
