"""The CLI never shows a traceback and has no silent surprises.

Every subcommand (the argparse tree of smdp.cli.build_parser, walked) runs as a real process with bad
input: missing arguments, a --data-dir that does not exist, nonexistent and malformed files, an
unreachable --url, unsupported and unreachable --database-url.  Each answers with a one-line
``smdp: ...`` error (and with --json an ``{"error", "code"}`` object on stdout) and a documented exit
status, never a Python traceback.  Then one test per surprise fixed: output files not overwritten
without --force, ``operator callback NAME`` showing rather than clearing, data directories created only
by serve and pki init, the remembered database URL, LF CSV files, tools/provision.py keeping its codes,
server.json removed when the server stops.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import stat
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from smdp.cli import EXIT_FAILED, EXIT_POLICY, EXIT_UNREACHABLE, EXIT_USAGE, build_parser, main

REPO = Path(__file__).resolve().parents[1]
SMDP = [sys.executable, "-m", "smdp.cli"]
DOCUMENTED_EXITS = {0, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_POLICY}
UNREACHABLE_URL = "https://127.0.0.1:1"
UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/nodb"



def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable subcommand: (its words, its parser)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += leaf_commands(child, (*path, name))
    if not found and path:
        found.append((path, parser))
    return found


LEAVES = leaf_commands(build_parser())


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions if action.option_strings}


def bad_value(action: argparse.Action, files: dict[str, Path]) -> list[str]:
    """A value for a required option or a positional: something that exists only as far as argparse cares."""
    if action.choices:
        return [str(next(iter(action.choices)))]
    if action.type in (int, float):
        return ["1"]
    dest = action.dest
    if dest in ("csv", "file", "template", "metadata", "policy", "op_file", "ca_file"):
        return [str(files["missing"])]
    if dest in ("iccid_start",):
        return ["898822801234567890"]
    if dest in ("imsi_start",):
        return ["001010000000001"]
    if dest in ("url",):
        return [UNREACHABLE_URL]
    if dest == "lpac_args":
        return ["--", "chip", "info"]
    return ["x"]


def argv_for(path: tuple[str, ...], parser: argparse.ArgumentParser, files: dict[str, Path], data_dir: Path,
             *, positional_file: Path | None = None, extra: dict[str, str] | None = None) -> list[str]:  # fmt: skip
    argv = [*path]
    options = options_of(parser)
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction) or action.dest == "help":
            continue
        if action.nargs in ("?", "*") and action.dest != "url":
            continue
        if action.nargs == argparse.REMAINDER:
            continue  # appended last
        if action.dest == "url" and action.nargs == "?":
            argv.append(UNREACHABLE_URL)  # operator callback NAME URL
            continue
        if positional_file is not None and action.dest in ("csv", "file", "template", "activation_code"):
            argv.append(str(positional_file))
        else:
            argv += bad_value(action, files)
    for action in options.values():
        if action.required:
            argv += [action.option_strings[0], *bad_value(action, files)]
    # a required mutually exclusive group (euicc serve --socket | --connect)
    for group in parser._mutually_exclusive_groups:
        if group.required:
            first = group._group_actions[0]
            argv += [first.option_strings[0], "bogus"]
    for name, value in (extra or {}).items():
        if name in options:
            argv += [options[name].option_strings[0], value]
    if "data_dir" in options:
        argv += ["--data-dir", str(data_dir)]
    if "url" in options and options["url"].option_strings:
        argv += ["--url", UNREACHABLE_URL, "--token", "smdp_test-token"]
    if "server" in options:  # bench: an unreachable server rather than starting one
        argv += ["--server", "127.0.0.1:1", "--server-pid", str(os.getpid()), "--sessions", "1"]
    if "port" in options and path == ("serve",):
        argv += ["--port", "70000"]
    for action in parser._actions:
        if action.nargs == argparse.REMAINDER:
            argv += ["--", "chip", "info"]
    return argv


def variants(path: tuple[str, ...], parser: argparse.ArgumentParser, tmp: Path) -> list[list[str]]:
    """The bad-input runs of one subcommand, as real processes (missing arguments and an unsupported
    --database-url are tried in-process below: argparse and the URL check come before anything else)."""
    files = {"missing": tmp / "no-such-file.der"}
    malformed = tmp / "malformed.json"
    malformed.write_bytes(b'{"not": json,\n\x00\x01 "a,b\n')
    data = tmp / "data"
    options = options_of(parser)
    json_flag = ["--json"] if "json" in options else []
    return [
        # a --data-dir that does not exist
        argv_for(path, parser, files, tmp / "no-such-dir"),
        # files that do not exist, an unreachable --url
        [*argv_for(path, parser, files, data), *json_flag],
        # malformed files (JSON, CSV, PEM, DER, eUICC state all the same garbage), an unreachable database
        argv_for(path, parser, files, data, positional_file=malformed,
                 extra={"metadata": str(malformed), "policy": str(malformed), "op_file": str(malformed),
                        "ca_file": str(malformed), "ca": str(malformed), "euicc": str(malformed),
                        "database_url": UNREACHABLE_DB}),
    ]  # fmt: skip


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # without --data-dir: a data directory that does not exist (never the user's own)
    env = {**os.environ, "SMDP_DATA_DIR": str(Path(tempfile.gettempdir()) / f"smdp-test-absent-{os.getpid()}" / "data")}
    env.pop("SMDP_DATABASE_URL", None)
    try:
        return subprocess.run([*SMDP, *argv], capture_output=True, text=True, timeout=30, cwd=REPO,
                              stdin=subprocess.DEVNULL, env=env)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"smdp {' '.join(argv)} did not finish in 30 s") from exc


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], list[tuple[list[str], subprocess.CompletedProcess[str]]]]:
    """All runs of all subcommands, 8 at a time."""
    jobs: list[tuple[tuple[str, ...], list[str]]] = []
    for path, parser in LEAVES:
        tmp = tmp_path_factory.mktemp("-".join(path))
        (tmp / "data").mkdir()
        jobs += [(path, argv) for argv in variants(path, parser, tmp)]
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda job: (job[0], job[1], run(job[1])), jobs))
    grouped: dict[tuple[str, ...], list[tuple[list[str], subprocess.CompletedProcess[str]]]] = {}
    for path, argv, result in done:
        grouped.setdefault(path, []).append((argv, result))
    return grouped


def test_the_walk_finds_every_subcommand() -> None:
    paths = {path for path, _ in LEAVES}
    for expected in [("serve",), ("pki", "init"), ("profile", "import"), ("order", "batch"), ("operator", "callback"),
                     ("lpa", "download"), ("euicc", "lpac"), ("db", "upgrade"), ("outbox", "retry"), ("bench",)]:  # fmt: skip
        assert expected in paths
    assert len(paths) >= 25


@pytest.mark.parametrize("path", [path for path, _ in LEAVES], ids=[" ".join(path) for path, _ in LEAVES])
def test_every_subcommand_fails_in_one_line(path: tuple[str, ...], results: dict) -> None:  # type: ignore[type-arg]
    for argv, result in results[path]:
        shown = f"smdp {' '.join(argv)} -> {result.returncode}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-3000:]}"
        assert "Traceback" not in result.stdout + result.stderr, shown
        assert result.returncode in DOCUMENTED_EXITS, shown
        if result.returncode == 0:
            continue
        errors = [line for line in result.stderr.splitlines() if line.startswith("smdp: ")]
        json_out = None
        try:
            json_out = json.loads(result.stdout) if result.stdout.strip() else None
        except ValueError:
            json_out = json.loads(result.stdout.strip().splitlines()[-1])
        assert errors or json_out is not None, shown
        assert len(result.stderr.splitlines()) <= 6, shown  # usage (3 lines), a permissions note, the error
        # an error (not a result with ok false): the JSON error object; smdp.bench prints its own run errors
        if "--json" in argv and errors and not (path == ("bench",) and "bench: " in result.stderr):
            assert isinstance(json_out, dict) and json_out.get("code") == result.returncode and json_out.get("error"), shown
        if UNREACHABLE_DB in argv and "no-such-file" not in " ".join(argv):
            assert result.returncode in (EXIT_USAGE, EXIT_FAILED, EXIT_UNREACHABLE), shown


@pytest.mark.parametrize("path", [path for path, _ in LEAVES], ids=[" ".join(path) for path, _ in LEAVES])
def test_missing_arguments_and_unsupported_databases(path: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = dict(LEAVES)[path]
    options = options_of(parser)
    required = [a for a in parser._actions if a.required and not isinstance(a, argparse._SubParsersAction)]
    required += [a for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions[:1]]
    if required:
        assert main([*path, *(["--json"] if "json" in options else [])]) == EXIT_USAGE
        captured = capsys.readouterr()
        assert captured.err.startswith("smdp: ") and len(captured.err.splitlines()) == 1
        if "json" in options:
            assert json.loads(captured.out)["code"] == EXIT_USAGE
    if "database_url" in options:
        (tmp_path / "data").mkdir()
        files = {"missing": tmp_path / "no-such-file"}
        for url in ("mysql://root@127.0.0.1/smdp", "postgresql+psycopg2://u@h/db"):
            argv = argv_for(path, parser, files, tmp_path / "data", extra={"database_url": url})
            if path == ("serve",):
                argv.remove("70000"), argv.remove("--port")
            code = main(argv)
            captured = capsys.readouterr()
            if "no-such-file" in captured.err:  # the file is read first
                assert code == EXIT_FAILED
                continue
            assert code == EXIT_USAGE, (argv, captured.err)
            assert captured.err.startswith("smdp: --database-url") and "Traceback" not in captured.err, captured.err


def test_known_messages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # an unreachable server: exit 3, the URL named, no aiohttp repr
    down = run(["order", "new", "--data-dir", str(data), "--url", UNREACHABLE_URL, "--token", "smdp_x", "--profile-type", "t", "--json"])
    assert down.returncode == EXIT_UNREACHABLE and "cannot reach https://127.0.0.1:1" in down.stderr
    assert "ClientConnectorError(" not in down.stderr + down.stdout
    assert json.loads(down.stdout)["code"] == EXIT_UNREACHABLE
    lpa = run(["lpa", "download", "--data-dir", str(data), "--insecure", "LPA:1$127.0.0.1:1$X"])
    assert "Traceback" not in lpa.stderr and "Error(" not in lpa.stdout
    # an unreachable database: exit 3, one line, no password
    db = run(["profile", "list", "--data-dir", str(data), "--database-url", "postgresql://u:secret@127.0.0.1:1/db"])
    assert db.returncode == EXIT_UNREACHABLE and "cannot open the database" in db.stderr and "secret" not in db.stderr
    # a wrong database URL scheme
    mysql = run(["db", "status", "--data-dir", str(data), "--database-url", "mysql://root@localhost/x"])
    assert mysql.returncode == EXIT_USAGE and "--database-url" in mysql.stderr and "sqlite, postgresql" in mysql.stderr
    # pki init on an existing PKI names the flag
    assert main(["pki", "init", "--data-dir", str(data)]) == 0
    again = run(["pki", "init", "--data-dir", str(data)])
    assert again.returncode == EXIT_USAGE and "--force" in again.stderr and "overwrite=True" not in again.stderr
    # serve flags named as flags
    limits = run(["serve", "--data-dir", str(data), "--max-connections", "0"])
    assert limits.returncode == EXIT_USAGE and "--max-connections" in limits.stderr and "max_connections" not in limits.stderr
    # serve remembers a --database-url only once it answers
    fresh = tmp_path / "fresh"
    serve = run(["serve", "--data-dir", str(fresh), "--database-url", UNREACHABLE_DB, "--port", "0"])
    assert serve.returncode == EXIT_UNREACHABLE and "cannot open the database" in serve.stderr
    assert not (fresh / "database-url").exists()
    # --debug shows the traceback
    debug = run(["--debug", "profile", "list", "--data-dir", str(data), "--database-url", UNREACHABLE_DB])
    assert debug.returncode == EXIT_UNREACHABLE and "Traceback" in debug.stderr
    # the exit statuses are documented
    assert "exit status" in build_parser().format_help() and "3    cannot reach" in build_parser().format_help()


def test_status_codes_are_printed_once() -> None:
    from smdp.lpa.es9client import Es9Error
    from smdp.operator_client import Es2Error

    assert str(Es2Error("confirmOrder", "8.2.5", "3.7", "8.2.5/3.7 Profile not available")).count("8.2.5/3.7") == 1
    assert str(Es2Error("confirmOrder", "8.2.5", "3.7", "Profile not available")) == "confirmOrder: 8.2.5/3.7 Profile not available"
    assert str(Es9Error("8.2", "1.2", "8.2/1.2 Profile not released", "authenticateClient")).count("8.2/1.2") == 1
    assert str(Es9Error("8.2", "1.2", "Profile not released", "authenticateClient")) == "authenticateClient: 8.2/1.2 Profile not released"


# --- no silent surprises ---------------------------------------------------------------------------------


def test_output_files_are_not_overwritten_without_force(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = tmp_path / "rows.csv"
    rows.write_text("profile_type,eid,confirmation_code\ntravel,,no\n")
    out = tmp_path / "codes.csv"
    out.write_text("precious\n")
    batch = ["order", "batch", str(rows), "--data-dir", str(data), "--out", str(out), "--url", UNREACHABLE_URL, "--token", "smdp_x"]
    refused = run(batch)
    assert refused.returncode == EXIT_USAGE and "--out" in refused.stderr and "--force" in refused.stderr
    assert out.read_text() == "precious\n"
    forced = run([*batch, "--force"])
    assert forced.returncode == EXIT_UNREACHABLE
    assert out.read_bytes() == b"row,iccid,eid,matching_id,activation_code,confirmation_code,error\n"
    out.unlink()
    crlf = run([*batch, "--crlf"])
    assert crlf.returncode == EXIT_UNREACHABLE and out.read_bytes().endswith(b",error\r\n")
    # profile generate: --key-file and --activation-codes
    keys = tmp_path / "keys.csv"
    keys.write_text("precious\n")
    common = ["profile", "generate", "--data-dir", str(data), "--type", "t", "--count", "1",
              "--iccid-start", "898822801234567890", "--imsi-start", "001010000000001"]  # fmt: skip
    key_refused = run([*common, "--key-file", str(keys)])
    assert key_refused.returncode == EXIT_USAGE and "--key-file" in key_refused.stderr and keys.read_text() == "precious\n"
    codes = tmp_path / "ac.csv"
    codes.write_text("precious\n")
    codes_refused = run([*common, "--key-file", str(tmp_path / "new-keys.csv"), "--activation-codes", str(codes)])
    assert codes_refused.returncode == EXIT_USAGE and "--activation-codes" in codes_refused.stderr
    assert codes.read_text() == "precious\n"


def test_malformed_batch_csv(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = tmp_path / "rows.csv"
    rows.write_bytes(b"\xff\xfe garbage \x00\n")
    out = tmp_path / "o.csv"
    batch = ["order", "batch", str(rows), "--data-dir", str(data), "--out", str(out), "--url", UNREACHABLE_URL, "--token", "smdp_x"]
    bad = run(batch)
    assert bad.returncode == EXIT_FAILED and bad.stderr.startswith("smdp: ") and not out.exists()
    rows.write_text("name,age\nx,1\n")
    wrong = run(batch)
    assert wrong.returncode == EXIT_FAILED and "profile_type" in wrong.stderr


async def test_operator_callback_shows_unless_told_to_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smdp.cli import CliError

    data = tmp_path / "data"
    data.mkdir()
    common = ["--data-dir", str(data)]

    async def cli(*argv: str) -> dict:  # type: ignore[type-arg]
        args = build_parser().parse_args([*argv, *common, "--json"])
        assert await args.handler(args) == 0
        return json.loads(capsys.readouterr().out)

    await cli("operator", "add", "acme")
    assert await cli("operator", "callback", "acme") == {"operator": "acme", "callbackUrl": None, "callbackCa": False}
    assert (await cli("operator", "callback", "acme", "--set", "https://ops.example/es2"))["callbackUrl"] == "https://ops.example/es2"
    shown = await cli("operator", "callback", "acme")  # shows; changes nothing
    assert shown == {"operator": "acme", "callbackUrl": "https://ops.example/es2", "callbackCa": False}
    assert (await cli("operator", "callback", "acme"))["callbackUrl"] == "https://ops.example/es2"
    # a positional URL is the same as --set
    assert (await cli("operator", "callback", "acme", "https://ops.example/v2"))["callbackUrl"] == "https://ops.example/v2"
    assert (await cli("operator", "callback", "acme", "--clear"))["callbackUrl"] is None
    assert (await cli("operator", "callback", "acme"))["callbackUrl"] is None
    args = build_parser().parse_args(["operator", "callback", "acme", "--ca-file", str(tmp_path / "ca.pem"), *common])
    with pytest.raises(CliError, match="--set"):
        await args.handler(args)
    args = build_parser().parse_args(["operator", "callback", "nobody", *common])
    with pytest.raises(CliError, match="no operator"):
        await args.handler(args)


def test_only_serve_and_pki_init_create_the_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    for argv in (["profile", "list"], ["db", "status"], ["db", "upgrade"], ["operator", "add", "x"], ["lpa", "list"],
                 ["outbox", "list"], ["profile-type", "list"], ["order", "new", "--profile-type", "t"]):  # fmt: skip
        result = run([*argv, "--data-dir", str(missing)])
        assert result.returncode == EXIT_USAGE, (argv, result.stderr)
        assert "does not exist" in result.stderr and "smdp pki init" in result.stderr, (argv, result.stderr)
        assert not missing.exists(), argv
    assert main(["pki", "init", "--data-dir", str(missing)]) == 0
    assert (missing / "certs" / "pki.toml").exists()


def test_the_data_dir_remembers_its_database_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smdp.config import load_settings

    data = tmp_path / "data"
    data.mkdir()
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert main(["db", "upgrade", "--data-dir", str(data), "--database-url", elsewhere]) == 0
    remembered = data / "database-url"
    assert remembered.read_text().strip() == elsewhere
    assert stat.S_IMODE(remembered.stat().st_mode) == 0o600
    capsys.readouterr()
    assert main(["db", "status", "--json", "--data-dir", str(data)]) == 0  # no flag: the remembered database
    assert json.loads(capsys.readouterr().out)["upToDate"] is True
    assert not (data / "smdp.db").exists()
    assert load_settings(data).database_url == elsewhere
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert load_settings(data, other).database_url == other  # the flag overrides it
    assert main(["db", "status", "--json", "--data-dir", str(data), "--database-url", other]) == 0
    assert json.loads(capsys.readouterr().out)["revision"] is None
    assert remembered.read_text().strip() == elsewhere  # db status does not change what is remembered


def test_provision_keeps_its_codes_when_stock_runs_out_and_server_json_goes_with_the_server(tmp_path: Path) -> None:
    from smdp.profiles.demo import build_demo_profile
    from smdp.profiles.saip import luhn_check_digit
    from tests.process_tools import Server, smdp

    data = str(tmp_path / "data")
    server = Server("--data-dir", data)
    try:
        for n in range(2):
            body = f"899901{os.getpid() % 10000:04d}10000{n:03d}"
            path = tmp_path / f"p{n}.der"
            path.write_bytes(build_demo_profile(body + luhn_check_digit(body), "001010000000003", os.urandom(16), os.urandom(16)))
            smdp("profile", "import", str(path), "--data-dir", data, "--stock", "--profile-type", "scarce")
        out = tmp_path / "out"
        script = subprocess.run(
            [sys.executable, "tools/provision.py", "--data-dir", data, "--profile-type", "scarce", "--count", "3", "--out", str(out)],
            capture_output=True, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip
        assert script.returncode == EXIT_FAILED, script.stderr
        assert "Traceback" not in script.stderr and len(script.stderr.strip().splitlines()) == 1
        assert script.stderr.startswith("provision: order 3 of 3 failed")
        written = list(csv.DictReader((out / "codes.csv").open(newline="")))
        assert len(written) == 2 and all(r["activation_code"].startswith("LPA:1$") for r in written)
        assert b"\r\n" not in (out / "codes.csv").read_bytes()
        again = subprocess.run(
            [sys.executable, "tools/provision.py", "--data-dir", data, "--profile-type", "scarce", "--out", str(out)],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
        assert again.returncode == EXIT_USAGE and "--force" in again.stderr and len(list(csv.DictReader((out / "codes.csv").open()))) == 2
        assert (Path(data) / "server.json").exists()
    finally:
        server.stop()
    assert not (Path(data) / "server.json").exists()
