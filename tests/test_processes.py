"""The README's flow as a newcomer runs it (real `smdp` processes), two servers on one PostgreSQL,
and the GSMA SGP.26 certificate set configured instead of the generated PKI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SGP26_DIR, require_ts48, sgp26_example_manifest, start_server
from tests.es9_tools import HookedClient, open_euicc, run_download
from tests.process_tools import REPO, Server, servers, smdp  # noqa: F401  (servers: a fixture)


def test_newcomer_flow_serve_then_lpa_download(tmp_path: Path, servers: list[Server]) -> None:
    data = str(tmp_path / "data")
    server = Server("--data-dir", data)
    servers.append(server)
    code_line = next(line for line in server.lines if "activation code:" in line)
    code = code_line.split("activation code:", 1)[1].strip()
    assert code.startswith(f"LPA:1${server.address}$")
    assert any("smdp lpa download" in line for line in server.lines)

    download = smdp("lpa", "download", "--data-dir", data, code)
    result = json.loads(download.stdout)
    assert result["ok"] is True and result["iccid"]
    listed = json.loads(smdp("lpa", "list", "--data-dir", data, "--json").stdout)
    assert [p["iccid"] for p in listed] == [result["iccid"]]

    ts48 = require_ts48()[-1]
    imported = json.loads(smdp("profile", "import", str(ts48), "--data-dir", data, "--matching-id", "CLI-1", "--json").stdout)
    again = json.loads(smdp("lpa", "download", "--data-dir", data, "--curve", "brainpool", f"LPA:1${server.address}$CLI-1").stdout)
    assert again["ok"] is True and again["iccid"] == imported["iccid"]

    refused = smdp("lpa", "download", "--data-dir", data, f"LPA:1${server.address}$CLI-1", check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)["subject_code"] == "8.2"
    states = {p["iccid"]: p["state"] for p in json.loads(smdp("profile", "list", "--data-dir", data, "--json").stdout)}
    assert states[imported["iccid"]] == "Installed"


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    (tmp_path / "data").mkdir()  # only serve and pki init create a data directory
    (tmp_path / "empty").mkdir()
    missing = smdp("profile", "import", str(tmp_path / "nope.der"), "--data-dir", data, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("smdp: ") and "Traceback" not in missing.stderr
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"\x30\x03\x01\x01")
    bad = smdp("profile", "import", str(garbage), "--data-dir", data, check=False)
    assert bad.returncode == 1 and "not a valid profile package" in bad.stderr and "Traceback" not in bad.stderr
    no_pki = smdp("lpa", "download", "--data-dir", str(tmp_path / "empty"), "LPA:1$127.0.0.1:1$X", check=False)
    assert no_pki.returncode == 1 and "Traceback" not in no_pki.stderr


async def test_two_server_processes_share_one_postgresql(tmp_path: Path, postgres_url: str, servers: list[Server]) -> None:
    """A session started on one `smdp serve` completes on another one using the same database."""
    ts48 = require_ts48()[0]
    data = str(tmp_path / "data")
    first = Server("--data-dir", data, "--database-url", postgres_url)
    servers.append(first)
    second = Server("--data-dir", data, "--database-url", postgres_url, "--address", first.address)
    servers.append(second)
    smdp("profile", "import", str(ts48), "--data-dir", data, "--database-url", postgres_url, "--matching-id", "PG-1")

    client = HookedClient()
    for function in ("authenticateClient", "getBoundProfilePackage", "handleNotification"):
        client.route[function] = second.address
    euicc = open_euicc(tmp_path, Path(data) / "certs" / "pki.toml")
    result = await run_download(euicc, f"LPA:1${first.address}$PG-1", client)
    await client.close()
    assert result.ok, result.to_json()

    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    step = await conn.fetchval("SELECT step FROM download_session WHERE transaction_id = $1", result.transaction_id)
    state = await conn.fetchval("SELECT state FROM profile WHERE matching_id = 'PG-1'")
    await conn.close()
    assert (step, state) == ("completed", "Installed")


@pytest.mark.parametrize("curve", ["nist", "brainpool"])
async def test_download_with_the_gsma_sgp26_certificates(tmp_path: Path, curve: str) -> None:
    if not SGP26_DIR.is_dir():
        pytest.skip(f"GSMA SGP.26 test certificates not found in {SGP26_DIR}")
    ts48 = require_ts48()[0]
    manifest = sgp26_example_manifest(tmp_path / "pki")
    server, runner = await start_server(tmp_path / "data", manifest, f"sqlite:///{tmp_path / 'smdp.db'}")
    try:
        from smdp.services.profiles import import_profile

        await import_profile(server.db, ts48.read_bytes(), matching_id="SGP26-1")
        euicc = open_euicc(tmp_path, manifest, curve)
        assert euicc.eid == "89049032123451234512345678901235"
        # the SGP.26 DPtls certificate names testsmdpplus1.example.com, not 127.0.0.1
        result = await run_download(euicc, f"LPA:1${server.address}$SGP26-1", HookedClient(insecure=True))
        assert result.ok, result.to_json()
        assert euicc.installed_profiles()[0].package == ts48.read_bytes()
    finally:
        await runner.aclose()
        await server.db.dispose()


def test_operator_cli_batch_orders_qr_codes_and_example_script(tmp_path: Path, servers: list[Server]) -> None:
    """`smdp order batch` (a failing row doesn't stop it) and tools/provision.py against a local server."""
    import csv

    from smdp.profiles.demo import build_demo_profile
    from smdp.profiles.saip import luhn_check_digit

    data = str(tmp_path / "data")
    servers.append(Server("--data-dir", data))
    for n in range(4):
        body = f"899901{os.getpid() % 10000:04d}00000{n:03d}"
        path = tmp_path / f"p{n}.der"
        path.write_bytes(build_demo_profile(body + luhn_check_digit(body), "001010000000003", os.urandom(16), os.urandom(16)))
        smdp("profile", "import", str(path), "--data-dir", data, "--stock", "--profile-type", "travel")
    rows = tmp_path / "rows.csv"
    rows.write_text("profile_type,iccid,eid,confirmation_code\ntravel,,,no\ntravel,,,yes\n,89999999999999999990,,no\n")
    out = tmp_path / "codes.csv"
    batch = smdp(
        "order", "batch", str(rows), "--data-dir", data, "--out", str(out), "--qr-dir", str(tmp_path / "qr"), "--json", check=False
    )
    assert batch.returncode == 1 and json.loads(batch.stdout) == {"rows": 3, "ordered": 2, "failed": 1, "out": str(out)}
    written = list(csv.DictReader(out.open()))
    assert [bool(r["activation_code"]) for r in written] == [True, True, False]
    assert "8.2.1/3.9" in written[2]["error"]
    assert written[1]["confirmation_code"] and written[1]["activation_code"].endswith("$$1")
    assert sorted(p.suffix for p in (tmp_path / "qr").iterdir()) == [".png", ".png", ".svg", ".svg"]

    confirmation_code, activation_code = written[1]["confirmation_code"], written[1]["activation_code"]
    downloaded = smdp("lpa", "download", "--data-dir", data, "--confirmation-code", confirmation_code, activation_code)
    assert json.loads(downloaded.stdout)["ok"] is True

    script = subprocess.run(
        [sys.executable, "tools/provision.py", "--data-dir", data, "--profile-type", "travel", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert script.returncode == 0, script.stderr
    assert "LPA:1$" in script.stdout and (tmp_path / "out" / "codes.csv").exists()


async def test_concurrent_downloads_over_two_servers_never_hand_out_a_profile_twice(
    tmp_path: Path, postgres_url: str, servers: list[Server]
) -> None:
    """200 downloads at once over two `smdp serve` processes on one PostgreSQL: 100 profiles, each wanted by two
    eUICCs. Every profile goes to exactly one; every session ends completed or failed with an SGP.22 code."""
    import asyncio

    import asyncpg

    from smdp.config import load_settings, master_sealer
    from smdp.profiles.demo import build_demo_profile
    from smdp.profiles.saip import luhn_check_digit
    from smdp.services.profiles import import_profile
    from smdp.store.db import Database
    from tests.es9_tools import crafted_euicc_manifest

    data = tmp_path / "data"
    first = Server("--data-dir", str(data), "--database-url", postgres_url)
    servers.append(first)
    second = Server("--data-dir", str(data), "--database-url", postgres_url, "--address", first.address)
    servers.append(second)
    manifest = data / "certs" / "pki.toml"
    other = crafted_euicc_manifest(tmp_path / "other", manifest)  # a second eUICC identity (another EID)

    db = Database(postgres_url)
    db.sealer = master_sealer(load_settings(data))  # the servers' master key (they created it)
    for n in range(100):
        body = f"8999020000000{n:05d}"
        der = build_demo_profile(body + luhn_check_digit(body), "001010000000004", os.urandom(16), os.urandom(16))
        await import_profile(db, der, matching_id=f"RACE-{n}")
    await db.dispose()

    limit = asyncio.Semaphore(40)

    async def contender(n: int, side: int):  # type: ignore[no-untyped-def]
        euicc = open_euicc(tmp_path / f"e{side}", manifest if side == 0 else other, name=f"c{n}")
        client = HookedClient()
        servers_for = (first.address, second.address) if (n + side) % 2 else (second.address, first.address)
        client.route.update({"initiateAuthentication": servers_for[0], "authenticateClient": servers_for[1],
                             "getBoundProfilePackage": servers_for[0], "handleNotification": servers_for[1]})
        async with limit:
            try:
                return euicc.eid, await run_download(euicc, f"LPA:1${first.address}$RACE-{n}", client)
            finally:
                await client.close()

    outcomes = await asyncio.gather(*(contender(n, side) for n in range(100) for side in (0, 1)))
    wins = [(eid, r) for eid, r in outcomes if r.ok]
    losses = [r for _eid, r in outcomes if not r.ok]
    assert len(wins) == 100 and len({r.iccid for _e, r in wins}) == 100
    assert {(r.subject_code, r.reason_code) for r in losses} <= {("8.2", "1.2"), ("8.1.1", "3.8")}, [r.to_json() for r in losses[:3]]

    conn = await asyncpg.connect(postgres_url)
    states = await conn.fetch("SELECT state, eid, iccid FROM profile WHERE matching_id LIKE 'RACE-%'")
    steps = await conn.fetch("SELECT step, count(*) FROM download_session GROUP BY step")
    installs = await conn.fetchval("SELECT count(*) FROM notification WHERE event = 'install' AND success")
    await conn.close()
    winners = {r.iccid: eid for eid, r in wins}
    assert all(row["state"] == "Installed" and winners[row["iccid"]] == row["eid"] for row in states)
    assert dict((row["step"], row["count"]) for row in steps) == {"completed": 100, "failed": 100}
    assert installs == 100
