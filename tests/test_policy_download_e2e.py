"""A profile type with a travel policy, end to end: generated profiles download into the virtual
eUICC; what it installed carries exactly the personalized values; the metadata it stored decodes to
the same policy; the USIM files hold the same steering lists; the device reads the policy back
(ES10c) and acts on it (``smdp lpa policy|usage|networks``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from smdp.cli import EXIT_FAILED, EXIT_POLICY, EXIT_UNREACHABLE, CliError, build_parser
from smdp.euicc.es10c import metadata_of
from smdp.lpa.policy import choose_network, read_policy
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.generate import IdentityRange
from smdp.profiles.policy import Network, load_policy
from smdp.profiles.policy_codec import policy_from_extension
from smdp.profiles.saip import validate_profile_package
from smdp.services.profile_types import create_profile_type, generate_profiles
from tests.conftest import TS48_DIR, RunningServer
from tests.es9_tools import open_euicc, run_download

BAHRAIN = Path(__file__).resolve().parents[1] / "examples" / "policies" / "bahrain-week.json"
METADATA = {"serviceProviderName": "Gulf Travel", "profileName": "Bahrain week", "profileClass": "operational"}


def template(kind: str) -> bytes:
    if kind == "demo":
        return build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16))
    path = TS48_DIR / "ts48v7-saip2.3-bertlv-suci.der"
    if not path.is_file():
        pytest.skip(f"GSMA TS.48 test profile not found at {path}")
    return path.read_bytes()


async def _generate(server: RunningServer, tmp_path: Path, der: bytes, count: int = 2) -> list[dict[str, str]]:
    await create_profile_type(server.db, "bahrain", der, metadata=METADATA, policy=json.loads(BAHRAIN.read_text()))
    await generate_profiles(server.db, "bahrain", IdentityRange("894900000000000000", "001010000000001", count),
                            key_file=tmp_path / "keys.csv", activation_codes=tmp_path / "ac.csv",
                            smdp_address=server.address)  # fmt: skip
    with (tmp_path / "keys.csv").open() as keys, (tmp_path / "ac.csv").open() as codes:
        by_iccid = {row["iccid"]: row for row in csv.DictReader(keys)}
        for row in csv.DictReader(codes):
            by_iccid[row["iccid"]]["activation_code"] = row["activation_code"]
    return list(by_iccid.values())


@pytest.mark.parametrize("kind", ["demo", "ts48"])
async def test_policy_profile_downloads_and_both_copies_of_the_policy_agree(server: RunningServer, tmp_path: Path, kind: str) -> None:
    rows = await _generate(server, tmp_path, template(kind))
    row = rows[1]
    euicc = open_euicc(tmp_path, server.manifest)
    result = await run_download(euicc, row["activation_code"])
    assert result.ok, result.to_json()
    assert result.iccid == row["iccid"]
    (installed,) = euicc.installed_profiles()

    # The installed elements carry exactly this profile's personalized values.
    package = validate_profile_package(installed.package)
    assert (package.iccid, package.ef_iccid, package.imsi) == (row["iccid"], row["iccid"], row["imsi"])
    for aka in package.named("akaParameter"):
        _, parameters = aka.value["algoConfiguration"]
        assert (parameters["algorithmID"], parameters["key"].hex().upper(), parameters["opc"].hex().upper()) == (1, row["ki"], row["opc"])
    pins = {e["keyReference"]: e["pinValue"].rstrip(b"\xff").decode() for pe in package.named("pinCodes") for e in pe.value["pinCodes"][1]}
    assert pins[0x01] == row["pin1"] and pins[0x0A] == row["adm1"]
    assert {e["keyReference"]: e["pukValue"].decode() for e in package.named("pukCodes")[0].value["pukCodes"]}[0x01] == row["puk1"]

    # The metadata the eUICC stored decodes to the same policy; the USIM files hold its steering.
    policy = load_policy(BAHRAIN)
    stored = metadata_of(euicc._state.profiles[0])  # the StoreMetadataRequest as the eUICC keeps it
    assert policy_from_extension(stored["serviceSpecificDataStoredInEuicc"]) == policy
    view = read_policy(euicc, row["iccid"], installed.elements)  # ES10c GetProfilesInfo, as an LPA reads it
    assert view.policy == policy
    assert [e.mccmnc for e in view.files.oplmnwact] == ["42602", "42604"]
    assert [n.plmn for n in view.files.fplmn] == ["426-01"]
    assert view.disagreements() == []
    assert view.files.home == Network("001", "01")

    # Network choice follows the preferred order and never takes the forbidden network.
    available = [Network("426", "01"), Network("426", "04"), Network("426", "02")]
    assert choose_network(view, "426", available).chosen == Network("426", "02")
    assert choose_network(view, "426", available[:2]).chosen == Network("426", "04")
    assert choose_network(view, "426", available[:1]).chosen is None


async def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    args = build_parser().parse_args(argv)
    code = await args.handler(args)
    return code, capsys.readouterr().out


async def test_lpa_commands_show_the_policy_simulate_usage_and_choose_networks(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = await _generate(server, tmp_path, template("demo"), count=1)
    euicc = open_euicc(tmp_path, server.manifest)
    assert (await run_download(euicc, rows[0]["activation_code"])).ok
    iccid = rows[0]["iccid"]
    common = ["--pki", str(server.manifest), "--euicc", str(euicc.state_path), "--data-dir", str(tmp_path / "cli")]

    code, out = await _cli(["lpa", "policy", iccid, "--json", *common], capsys)
    shown = json.loads(out)
    assert code == 0 and shown["policy"]["name"] == "Bahrain week" and shown["disagreements"] == []
    assert [e["plmn"] for e in shown["usim"]["oplmnwact"]] == ["426-02", "426-04"] and shown["usim"]["fplmn"] == ["426-01"]

    alerts = []
    for _ in range(8):
        code, out = await _cli(["lpa", "usage", iccid, "--add", "700MB", "--roaming", "42602", "--json", *common], capsys)
        alerts += [a["percent"] for a in json.loads(out)["alerts"]]
    assert alerts == [50, 80, 100] and code == EXIT_POLICY  # the last 700 MB went beyond the cap
    code, out = await _cli(["lpa", "usage", iccid, "--add", "1MB", "--roaming", "42602", *common], capsys)
    assert code == EXIT_POLICY and "suspended" in out
    code, out = await _cli(["lpa", "usage", iccid, "--add", "1GB", *common], capsys)  # at home: out of scope
    assert code == 0
    code, out = await _cli(["lpa", "usage", iccid, "--lift", *common], capsys)
    assert "lifted" in out
    code, out = await _cli(["lpa", "usage", iccid, "--add", "1MB", "--roaming", "42602", *common], capsys)
    assert code == 0

    code, out = await _cli(["lpa", "networks", iccid, "--country", "426", "--available", "42601,42604", "--json", *common], capsys)
    choice = json.loads(out)
    assert code == 0 and choice["chosen"] == "426-04" and choice["networks"]["426-01"].startswith("forbidden")
    # Only the forbidden network in range: no service, which the policy decided (not a bad argument).
    code, out = await _cli(["lpa", "networks", iccid, "--country", "426", "--available", "42601", *common], capsys)
    assert code == EXIT_POLICY and "no service" in out
    with pytest.raises(CliError) as bad:
        await _cli(["lpa", "networks", iccid, "--country", "426", "--available", "43101", *common], capsys)
    assert bad.value.code == EXIT_FAILED


def test_the_policy_saying_no_has_its_own_exit_status() -> None:
    # 3 means "cannot reach the server or the database": a script must not retry a refused usage.
    assert EXIT_POLICY not in (0, EXIT_FAILED, 2, EXIT_UNREACHABLE)
    shown = build_parser().format_help()
    assert f"  {EXIT_POLICY}    the Profile's travel policy said no" in shown
    assert "lpa usage" not in shown.split(f"  {EXIT_UNREACHABLE}    ")[1].split(f"  {EXIT_POLICY}    ")[0]


def test_profile_inspect_shows_the_tree_and_rejects_a_corrupted_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smdp.cli import main

    der = build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16))
    (tmp_path / "p.der").write_bytes(der)
    assert main(["profile", "inspect", str(tmp_path / "p.der"), "--json", "--data-dir", str(tmp_path)]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["valid"] and view["iccid"] == "8949000000000000018" and view["imsi"] == "001010000000001"
    assert [e["pe"] for e in view["elements"]] == ["header", "mf", "pukCodes", "pinCodes", "usim", "akaParameter", "end"]
    usim = next(e for e in view["elements"] if e["pe"] == "usim")
    assert {"name": "ef-imsi", "content": "080910100000000010"}.items() <= next(f for f in usim["files"] if f["name"] == "ef-imsi").items()
    (tmp_path / "bad.der").write_bytes(der[:-9])  # PE-End cut off
    assert main(["profile", "inspect", str(tmp_path / "bad.der"), "--data-dir", str(tmp_path)]) == 1
    assert "INVALID: last PE #5 is 'akaParameter', but a package must end with PE-End" in capsys.readouterr().out
