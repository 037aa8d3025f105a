#!/usr/bin/env python3
"""Example provisioning script: order eSIM profiles over ES2+ and hand out activation codes and QR codes.

    python tools/provision.py --data-dir DIR --profile-type travel --count 3 --out codes/

Against the local `smdp serve --data-dir DIR` it uses the default operator the server created; for another
SM-DP+ pass --url, --token and --operator.  Each order is downloadOrder + confirmOrder (release at once),
with a confirmation code when --with-code is given.
"""

import argparse
import asyncio
import secrets
from pathlib import Path

from smdp.cli import order


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--operator")
    parser.add_argument("--profile-type", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--with-code", action="store_true", help="protect each order with a confirmation code")
    parser.add_argument("--out", default="codes", help="folder for codes.csv and the QR images")
    args = parser.parse_args()
    args.pki, args.ca, args.insecure, args.json = None, None, False, False

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    async with order.client_from_args(args) as client:
        lines = ["iccid,activation_code,confirmation_code"]
        for _ in range(args.count):
            code = f"{secrets.randbelow(10**8):08d}" if args.with_code else None
            placed = await order.place_order(client, profile_type=args.profile_type, confirmation_code=code)
            order.write_qr(placed.activation_code, out, placed.iccid)
            lines.append(f"{placed.iccid},{placed.activation_code},{code or ''}")
            print(f"{placed.iccid}  {placed.activation_code}" + (f"  code {code}" if code else ""))
    (out / "codes.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
