#!/usr/bin/env python3
"""Write (or check) smdp's public test PKI: certs/smdp-test-pki.toml and certs/smdp-test-pki/.

    python tools/make_test_pki.py --check                 # the committed files are what the defaults give
    python tools/make_test_pki.py --force                 # rewrite them (after changing the defaults)
    python tools/make_test_pki.py --tls-name esim.lab --out ~/lab/smdp-test-pki.toml

Keys, serial numbers and signatures all follow from the arguments (smdp.pki.issue.init_public_test_pki),
so the same arguments give byte-identical files on any machine. Extra ``--tls-name``s change only the DPtls
certificate: the CI, EUM, eUICC and SM-DP+ certificates stay those of the committed PKI, and an LPA already
set up with its CI keeps working with a copy made for another host name. The private keys are public: this
PKI is for labs only (see certs/README.md). Errors are one line: ``make_test_pki: message``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from smdp.pki.issue import (
    PUBLIC_TEST_NOT_AFTER,
    PUBLIC_TEST_NOT_BEFORE,
    PUBLIC_TEST_TLS_NAMES,
    init_public_test_pki,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO / "certs" / "smdp-test-pki.toml"


def instant(text: str) -> datetime:
    """An ISO 8601 date or date-time, UTC unless it says otherwise."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def files_of(manifest: Path) -> dict[str, bytes]:
    """The manifest and every file of its directory, by path relative to the manifest's directory."""
    directory = manifest.with_suffix("")
    found = {manifest.name: manifest.read_bytes()} if manifest.is_file() else {}
    if directory.is_dir():
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                found[path.relative_to(manifest.parent).as_posix()] = path.read_bytes()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_test_pki", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_MANIFEST), help="the manifest to write; its files go to the "
                        "directory of the same name without .toml (default: certs/smdp-test-pki.toml)")
    parser.add_argument("--tls-name", action="append", default=[], metavar="HOST",
                        help=f"a DNS name or IP address for the DPtls certificate besides {', '.join(PUBLIC_TEST_TLS_NAMES)}")
    parser.add_argument("--not-before", type=instant, default=PUBLIC_TEST_NOT_BEFORE, metavar="DATE",
                        help=f"start of every certificate's validity (default {PUBLIC_TEST_NOT_BEFORE:%Y-%m-%d})")
    parser.add_argument("--not-after", type=instant, default=PUBLIC_TEST_NOT_AFTER, metavar="DATE",
                        help=f"end of every certificate's validity (default {PUBLIC_TEST_NOT_AFTER:%Y-%m-%dT%H:%M:%S}Z)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out differs from what "
                        "these arguments give")
    args = parser.parse_args(argv)
    manifest = Path(args.out).expanduser().absolute()
    options = {"not_before": args.not_before, "not_after": args.not_after,
               "tls_names": [*PUBLIC_TEST_TLS_NAMES, *args.tls_name]}  # fmt: skip
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                expected = files_of(init_public_test_pki(Path(tmp) / manifest.name, **options))
            found = files_of(manifest)
            differ = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
            if differ:
                print(f"make_test_pki: {manifest} differs from what the arguments give: {', '.join(differ)}",
                      file=sys.stderr)  # fmt: skip
                return 1
            print(f"{manifest}: {len(found)} files, as the arguments give")
            return 0
        manifest.parent.mkdir(parents=True, exist_ok=True)
        init_public_test_pki(manifest, overwrite=args.force, **options)
    except FileExistsError:
        print(f"make_test_pki: {manifest} or its files exist; pass --force to replace them", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"make_test_pki: {exc}", file=sys.stderr)
        return 1
    print(f"public test PKI written: {manifest} (NOT FOR PRODUCTION: its private keys are public)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
