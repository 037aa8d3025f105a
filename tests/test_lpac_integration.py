"""lpac (estkme-group/lpac) downloads from smdp through the virtual eUICC: the issue's acceptance,
run with a real lpac binary ($LPAC or lpac on PATH) and skipped without one."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from smdp.euicc.apdu import IsdrCard
from smdp.euicc.lpac import run_lpac
from smdp.services.profiles import import_profile
from smdp.store.tables import DownloadSession, Notification
from tests.conftest import RunningServer, require_ts48
from tests.es9_tools import open_euicc

REPO = Path(__file__).resolve().parents[1]


def lpac_binary() -> Path:
    found = os.environ.get("LPAC") or shutil.which("lpac")
    if not found or not os.access(found, os.X_OK):
        pytest.skip("lpac not found: set LPAC=/path/to/lpac or put lpac on PATH (see README, 'lpac and other LPAs')")
    return Path(found)


async def lpac(card: IsdrCard, *args: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.BytesIO()
    status = await run_lpac(card, lpac_binary(), list(args), output=out)
    return status, [json.loads(line) for line in out.getvalue().splitlines()]


def result_of(lines: list[dict[str, Any]]) -> dict[str, Any]:
    (result,) = [line["payload"] for line in lines if line["type"] == "lpa"]
    return result


@pytest.mark.parametrize("curve", ["nist", "brainpool"])
async def test_lpac_downloads_manages_and_notifies(server: RunningServer, tmp_path: Path, curve: str) -> None:
    lpac_binary()
    imported = await import_profile(server.db, require_ts48()[0].read_bytes(), matching_id="TS48-ACCEPT-1")
    euicc = open_euicc(tmp_path, server.manifest, curve)
    card = IsdrCard(euicc)
    iccid = imported.iccid

    status, lines = await lpac(card, "chip", "info")
    info = result_of(lines)
    assert status == 0 and info["code"] == 0
    assert info["data"]["eidValue"] == euicc.eid
    assert info["data"]["EUICCInfo2"]["euiccCiPKIdListForVerification"]

    status, lines = await lpac(card, "profile", "download", "-a", f"LPA:1${server.address}$TS48-ACCEPT-1")
    result = result_of(lines)
    assert (status, result["code"], result["data"]["iccid"]) == (0, 0, iccid), lines
    assert [p.iccid for p in euicc.installed_profiles()] == [iccid]

    async def listed() -> list[tuple[str, str, str | None]]:
        status, lines = await lpac(card, "profile", "list")
        assert status == 0
        return [(p["iccid"], p["profileState"], p["profileNickname"]) for p in result_of(lines)["data"]]

    assert await listed() == [(iccid, "disabled", None)]
    for command, expected in [
        (["profile", "enable", iccid], (iccid, "enabled", None)),
        (["profile", "nickname", iccid, "Travel"], (iccid, "enabled", "Travel")),
        (["profile", "disable", iccid], (iccid, "disabled", "Travel")),
    ]:
        status, lines = await lpac(card, *command)
        assert (status, result_of(lines)["code"]) == (0, 0), lines
        assert await listed() == [expected]
    status, lines = await lpac(card, "profile", "delete", iccid)
    assert (status, result_of(lines)["code"]) == (0, 0), lines
    assert await listed() == []

    status, lines = await lpac(card, "notification", "process", "-a", "-r")
    assert (status, result_of(lines)["code"]) == (0, 0), lines
    handled = [line["payload"]["data"] for line in lines if line["payload"].get("message") == "es9p_handle_notification"]
    assert len(handled) == 4
    assert euicc.pending_notifications() == []
    async with server.db.transaction() as db:
        session = (await db.exec(select(DownloadSession))).one()
        received = (await db.exec(select(Notification).order_by(Notification.seq_number))).all()
    assert session.step == "completed"
    assert [(n.event, n.iccid) for n in received] == [(e, iccid) for e in ("install", "enable", "disable", "delete")]
    assert received[0].success is True


@pytest.mark.parametrize("curve", ["nist", "brainpool"])
async def test_lpac_shows_the_server_reason_for_a_wrong_confirmation_code(server: RunningServer, tmp_path: Path, curve: str) -> None:
    lpac_binary()
    await import_profile(server.db, require_ts48()[0].read_bytes(), matching_id="TS48-CC-1", confirmation_code="12345678")
    card = IsdrCard(open_euicc(tmp_path, server.manifest, curve))
    status, lines = await lpac(card, "profile", "download", "-a", f"LPA:1${server.address}$TS48-CC-1", "-c", "87654321")
    result = result_of(lines)
    assert status != 0 and result["code"] != 0
    assert result["message"] == "es9p_get_bound_profile_package"
    assert result["data"] == "8.2.7/3.8 Confirmation Code refused"  # the SGP.22 codes reach the lpac user


@pytest.mark.parametrize("curve", ["nist", "brainpool"])
async def test_lpac_shows_the_server_reason_for_an_unknown_matching_id(server: RunningServer, tmp_path: Path, curve: str) -> None:
    lpac_binary()
    card = IsdrCard(open_euicc(tmp_path, server.manifest, curve))
    status, lines = await lpac(card, "profile", "download", "-a", f"LPA:1${server.address}$NO-SUCH-ID")
    result = result_of(lines)
    assert status != 0
    assert (result["message"], result["data"]) == ("es9p_authenticate_client", "8.2.6/3.8 unknown matching ID")


def test_smdp_euicc_lpac_command_runs_lpac_and_keeps_its_exit_status(tmp_path: Path) -> None:
    from tests.process_tools import Server

    binary = lpac_binary()
    data = tmp_path / "data"
    server = Server("--data-dir", str(data))
    try:
        smdp = [sys.executable, "-m", "smdp.cli"]
        env = dict(os.environ, LPAC=str(binary))
        run = lambda *a: subprocess.run([*smdp, "euicc", "lpac", "--data-dir", str(data), "--", *a],  # noqa: E731
                                        capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
        demo = next(line.split()[-1] for line in server.lines if "activation code" in line)
        info = run("chip", "info")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout.splitlines()[-1])["payload"]["data"]["eidValue"]
        download = run("profile", "download", "-a", demo)
        last = json.loads(download.stdout.splitlines()[-1])
        assert (download.returncode, last["payload"]["code"]) == (0, 0), download.stdout
        failed = run("profile", "enable", "89000000000000000000")
        assert failed.returncode != 0 and json.loads(failed.stdout.splitlines()[-1])["payload"]["code"] != 0
    finally:
        server.stop()


async def test_lpac_installs_two_ts48_files_stamped_with_their_own_iccids(server: RunningServer, tmp_path: Path) -> None:
    """Issue 16's acceptance: a TS.48 file stamped with another ICCID (ProfileHeader and EF.ICCID) downloads with
    lpac, and two stamped copies of the same file coexist on the server and on the eUICC."""
    from smdp.profiles.saip import luhn_check_digit
    from smdp.profiles.stamp import stamp_iccid

    lpac_binary()
    package = require_ts48()[0].read_bytes()
    iccids = [body + luhn_check_digit(body) for body in ("898830000000000011", "898830000000000012")]
    for n, iccid in enumerate(iccids):
        await import_profile(server.db, stamp_iccid(package, iccid), matching_id=f"STAMPED-{n}")
    card = IsdrCard(open_euicc(tmp_path, server.manifest, "nist"))
    for n, iccid in enumerate(iccids):
        status, lines = await lpac(card, "profile", "download", "-a", f"LPA:1${server.address}$STAMPED-{n}")
        result = result_of(lines)
        assert (status, result["code"], result["data"]["iccid"]) == (0, 0, iccid), lines
    status, lines = await lpac(card, "profile", "list")
    assert status == 0 and sorted(p["iccid"] for p in result_of(lines)["data"]) == iccids
