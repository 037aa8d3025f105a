"""``smdp profile inspect|generate|export|delete`` and ``smdp profile-type create|list``: SAIP packages,
profile types and batch personalization (see smdp.services.profile_types), and stored profiles taken out
(see smdp.services.profiles)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from smdp.cli import EXIT_USAGE, CliError, open_database, print_result, refuse_overwrite, settings_of


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror}") from None


def _read_document(path: str, what: str) -> Any:
    import tomllib

    text = _read(path, what).decode("utf-8", errors="replace")
    try:
        return tomllib.loads(text) if path.lower().endswith(".toml") else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"{what} {path} is not valid {'TOML' if path.lower().endswith('.toml') else 'JSON'}: {exc}") from None


async def cmd_profile_inspect(args: argparse.Namespace) -> int:
    from smdp.profiles.inspect import inspect_package, render_tree
    from smdp.profiles.saip import SaipError, decode_profile_package, validate_profile_package

    der = _read(args.file, "profile package")
    try:
        package = validate_profile_package(der)
        problem = None
    except SaipError as exc:
        problem = str(exc)
        try:
            package = decode_profile_package(der)
        except SaipError:
            raise CliError(f"{args.file}: {exc}") from None
    view = inspect_package(package)
    view["valid"], view["problem"] = problem is None, problem
    text = render_tree(view) + (f"\nINVALID: {problem}" if problem else "\nvalid")
    print_result(args, view, text)
    return 0 if problem is None else 1


async def cmd_profile_type_create(args: argparse.Namespace) -> int:
    from smdp.profiles.policy import PolicyError, load_policy
    from smdp.services.profile_types import ProfileTypeError, create_profile_type

    template = _read(args.template, "template")
    metadata = _read_document(args.metadata, "metadata") if args.metadata else None
    policy = None
    if args.policy:
        try:
            policy = load_policy(Path(args.policy)).to_json()
        except PolicyError as exc:
            raise CliError(f"policy {args.policy}: {exc}") from None
    db = await open_database(args)
    try:
        row = await create_profile_type(
            db, args.name, template, metadata=metadata, policy=policy, algorithm=args.algorithm, reusable=args.reusable,
            max_download_attempts=args.max_attempts, order_validity_days=args.order_validity_days,
        )
    except ProfileTypeError as exc:
        raise CliError(f"profile type {args.name!r}: {exc}") from None
    finally:
        await db.dispose()
    result = {"name": row.name, "algorithm": row.algorithm, "policy": (row.policy or {}).get("name")}
    print_result(args, result, f"profile type {row.name!r} created (AKA: {row.algorithm}"
                               f"{', policy ' + repr(result['policy']) if result['policy'] else ''})")  # fmt: skip
    return 0


async def cmd_profile_type_list(args: argparse.Namespace) -> int:
    from smdp.services.profile_types import list_profile_types

    db = await open_database(args)
    try:
        rows = await list_profile_types(db)
    finally:
        await db.dispose()
    lines = [f"{r['name']:<24} {r['algorithm']:<9} {r['policy'] or '-':<24} "
             f"{', '.join(f'{k} {v}' for k, v in sorted(r['profiles'].items())) or 'no profiles'}" for r in rows]  # fmt: skip
    print_result(args, rows, "\n".join(lines) or "no profile types")
    return 0


async def cmd_profile_generate(args: argparse.Namespace) -> int:
    from smdp.cli import local_server_address, operator_id_by_name
    from smdp.cli.progress import ProgressBar
    from smdp.profiles.generate import IdentityRange
    from smdp.services.profile_types import ProfileTypeError, generate_profiles

    try:
        identities = IdentityRange(args.iccid_start, args.imsi_start, args.count)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    op = None
    if args.op_file:
        text = _read(args.op_file, "OP file").decode("ascii", errors="replace").strip()
        try:
            op = bytes.fromhex(text)
        except ValueError:
            raise CliError(f"OP file {args.op_file} must hold 32 hex digits") from None
    settings = settings_of(args)
    key_file = Path(args.key_file) if args.key_file else settings.data_dir / f"keys-{args.type}-{args.iccid_start}.csv"
    codes_file = Path(args.activation_codes) if args.activation_codes else None
    if codes_file is not None and codes_file.resolve() == key_file.resolve():
        raise CliError(f"--activation-codes and --key-file name the same file {key_file}", EXIT_USAGE)
    for flag, path in (("--key-file", key_file), ("--activation-codes", codes_file)):
        if path is not None:
            refuse_overwrite(path, flag, args.force)
            if not path.parent.is_dir():
                raise CliError(f"{flag} {path}: no directory {path.parent}", EXIT_USAGE)
    db = await open_database(args)
    if args.force:  # the key file writer never replaces a file: remove the old one now the database is open
        for path in (key_file, codes_file):
            if path is not None and path.exists():
                path.unlink()
    bar = ProgressBar(args.count, f"generating {args.type}", enabled=True if args.progress else None)
    try:
        operator_id = await operator_id_by_name(db, settings.data_dir, args.operator or "default")
        result = await generate_profiles(
            db, args.type, identities, key_file=key_file, op=op,
            activation_codes=codes_file,
            smdp_address=args.smdp_address or local_server_address(settings) or "127.0.0.1:8443",
            operator_id=operator_id, progress=bar.update, crlf=args.crlf,
        )  # fmt: skip
    except ProfileTypeError as exc:
        raise CliError(str(exc)) from None
    finally:
        bar.close()
        await db.dispose()
    summary = {"profileType": result.profile_type, "count": result.count, "firstIccid": result.first_iccid,
               "lastIccid": result.last_iccid, "seconds": round(result.seconds, 2),
               "profilesPerSecond": round(result.per_second, 1), "keyFile": str(result.key_file),
               "activationCodes": str(result.activation_codes) if result.activation_codes else None}  # fmt: skip
    text = (f"generated {result.count} profiles of {result.profile_type!r} ({result.first_iccid} .. {result.last_iccid}) "
            f"in {result.seconds:.1f} s, {result.per_second:,.0f}/s\nkey file (mode 0600): {result.key_file}")  # fmt: skip
    if result.activation_codes:
        text += f"\nactivation codes: {result.activation_codes}"
    print_result(args, summary, text)
    return 0


async def cmd_profile_export(args: argparse.Namespace) -> int:
    from smdp.atomic import write_atomic
    from smdp.services.profiles import ProfileError, export_package

    path = Path(args.file)
    refuse_overwrite(path, "FILE", args.force)
    if not path.parent.is_dir():
        raise CliError(f"FILE {path}: no directory {path.parent}", EXIT_USAGE)
    db = await open_database(args)
    try:
        der = await export_package(db, args.iccid)
    except ProfileError as exc:
        raise CliError(str(exc)) from None
    finally:
        await db.dispose()
    try:  # mode 0600: the package holds the Ki, OPc and PINs in clear
        write_atomic(path, der, 0o600, overwrite=args.force)
    except FileExistsError:
        raise CliError(f"FILE {path} exists; pass --force to overwrite it", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    result = {"iccid": args.iccid, "file": str(path), "size": len(der)}
    print_result(args, result, f"exported the profile package of ICCID {args.iccid} ({len(der)} bytes, mode 0600): {path}")
    return 0


async def cmd_profile_delete(args: argparse.Namespace) -> int:
    from smdp.services.profiles import ProfileError, delete_profile

    db = await open_database(args)
    try:
        deleted = await delete_profile(db, args.iccid, force=args.force)
    except ProfileError as exc:
        raise CliError(str(exc)) from None
    finally:
        await db.dispose()
    result = {"iccid": deleted.iccid, "state": deleted.state, "downloadSessions": deleted.download_sessions,
              "notifications": deleted.notifications}  # fmt: skip
    print_result(args, result, f"deleted profile {deleted.iccid} ({deleted.state}; {deleted.download_sessions} download "
                               f"session(s), {deleted.notifications} notification(s))")  # fmt: skip
    return 0


def add_commands(sub: Any, profile: Any, common: Any) -> None:
    """``profile inspect|generate|export|delete`` on the ``profile`` subparsers; ``profile-type``."""
    ins = profile.add_parser("inspect", help="show a SAIP profile package as a tree (and validate it)")
    common(ins, json_output=True)
    ins.add_argument("file")
    ins.set_defaults(handler=cmd_profile_inspect)

    gen = profile.add_parser("generate", help="personalize N profiles of a profile type")
    common(gen, database=True, json_output=True)
    gen.add_argument("--type", required=True, help="profile type name")
    gen.add_argument("--count", type=int, required=True)
    gen.add_argument("--iccid-start", required=True, help="first ICCID without its check digit (18 or 19 digits)")
    gen.add_argument("--imsi-start", required=True, help="first IMSI (15 digits)")
    gen.add_argument("--op-file", help="file with the operator's OP (32 hex digits): OPc = MILENAGE OPc(Ki, OP)")
    gen.add_argument("--key-file", help="where to write the operator key file (default: DATA_DIR/keys-TYPE-ICCID.csv)")
    gen.add_argument("--activation-codes", metavar="FILE.csv",
                     help="give each profile a matching ID (Released, ready to download) and write ICCID,activation code")
    gen.add_argument("--smdp-address", help="SM-DP+ address in the activation codes (default: the local server's)")
    gen.add_argument("--operator", help="operator owning the profiles (for ES2+ orders)")
    gen.add_argument("--force", action="store_true", help="overwrite --key-file and --activation-codes if they exist")
    gen.add_argument("--crlf", action="store_true",
                     help="CRLF line endings (RFC 4180) in --key-file and --activation-codes (default: LF)")
    gen.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    gen.set_defaults(handler=cmd_profile_generate)

    exp = profile.add_parser("export", help="write a profile's unprotected profile package (DER, mode 0600) to FILE")
    common(exp, database=True, json_output=True)
    exp.add_argument("iccid")
    exp.add_argument("file")
    exp.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    exp.set_defaults(handler=cmd_profile_export)

    dele = profile.add_parser("delete", help="delete a profile with its download sessions and notifications")
    common(dele, database=True, json_output=True)
    dele.add_argument("iccid")
    dele.add_argument("--force", action="store_true",
                      help="delete it even while an order or a download is in progress (Allocated, Linked, Confirmed, "
                           "Released, Downloaded)")
    dele.set_defaults(handler=cmd_profile_delete)

    types = sub.add_parser("profile-type", help="profile types").add_subparsers(dest="profile_type_command", required=True)
    create = types.add_parser("create", help="register a template with its metadata defaults and policy")
    common(create, database=True, json_output=True)
    create.add_argument("name")
    create.add_argument("--template", required=True, help="SAIP profile package (DER)")
    create.add_argument("--metadata", help="metadata defaults, JSON or TOML (serviceProviderName, profileName, ...)")
    create.add_argument("--policy", help="travel policy, JSON or TOML (see examples/policies/)")
    create.add_argument("--reusable", action="store_true", help="R&D: its profiles stay downloadable any number of times")
    create.add_argument("--max-attempts", type=int, help="download attempts allowed per profile")
    create.add_argument("--order-validity-days", type=int, help="an ES2+ order for one of its profiles expires after this")
    create.add_argument("--algorithm", choices=["milenage", "template"], default="milenage",
                        help="AKA: Milenage with generated Ki/OPc (default) or the template's algorithm with a generated key")
    create.set_defaults(handler=cmd_profile_type_create)
    lst = types.add_parser("list", help="profile types and their profiles by state")
    common(lst, database=True, json_output=True)
    lst.set_defaults(handler=cmd_profile_type_list)
