"""The test LPA's local profile management (``smdp lpa enable|disable|delete|nickname``) against the
virtual eUICC and a running SM-DP+: the eUICC's state after each step, the SGP.22 result codes of a
refusal, the Notifications the server records; and ``--euicc-cert/--euicc-key/--eum-cert`` for
certificate negative tests without a manifest."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from smdp.cli import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main
from smdp.euicc import VirtualEuicc
from smdp.euicc.errors import EuiccCommandError
from smdp.lpa import es10
from smdp.services.profiles import import_profile
from smdp.store.tables import Notification, Profile
from tests.conftest import RunningServer
from tests.device_tools import demo_iccid, demo_package
from tests.es9_tools import PAST, crafted_euicc_manifest, open_euicc


class Cli:
    """``smdp lpa ...`` in a thread (it runs its own event loop; the server keeps serving on ours)."""

    def __init__(self, server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], state: Path) -> None:
        self.server, self.capsys, self.state = server, capsys, state
        trust = ["--ca", str(server.ca_cert)] if server.ca_cert else ["--insecure"]
        self.common = ["--pki", str(server.manifest), "--data-dir", str(tmp_path / "cli"), *trust]

    async def run(self, *argv: str, euicc: Path | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, *self.common, "--euicc", str(euicc or self.state)])
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str, euicc: Path | None = None) -> tuple[int, Any, str]:
        code, out, err = await self.run(*argv, "--json", euicc=euicc)
        return code, json.loads(out.strip().splitlines()[-1]) if out.strip() else None, err


def euicc_states(state: Path) -> dict[str, str]:
    """The Profiles and their states as the eUICC keeps them (a fresh opening of its state file)."""
    return {p.iccid: p.state for p in VirtualEuicc.open(state).installed_profiles()}


async def server_events(server: RunningServer, iccid: str) -> list[str]:
    async with server.db.transaction() as db:
        rows = (await db.exec(select(Notification).where(Notification.iccid == iccid).order_by(Notification.id))).all()
    return [n.event for n in rows]


async def server_euicc_state(server: RunningServer, iccid: str) -> str | None:
    async with server.db.transaction() as db:
        return (await db.exec(select(Profile).where(Profile.iccid == iccid))).one().euicc_state


async def installed(server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], **metadata: Any) -> tuple[Cli, str]:
    """A profile imported on the server and downloaded with ``smdp lpa download`` into a new eUICC."""
    iccid = demo_iccid()
    meta = {"serviceProviderName": "smdp test", "profileName": "Ops test", "profileClass": "operational", **metadata}
    imported = await import_profile(server.db, demo_package(iccid), metadata=meta)
    cli = Cli(server, tmp_path, capsys, tmp_path / "euicc.json")
    code, result, err = await cli.json("lpa", "download", f"LPA:1${server.address}${imported.matching_id}", "--curve", "nist")
    assert code == EXIT_OK, (result, err)
    assert result["iccid"] == iccid and result["notification_delivered"]
    return cli, iccid


async def test_enable_disable_delete_change_the_euicc_and_notify_the_server(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli, iccid = await installed(server, tmp_path, capsys)
    assert euicc_states(cli.state) == {iccid: "disabled"}
    assert await server_euicc_state(server, iccid) == "disabled"

    code, shown, _ = await cli.json("lpa", "enable", iccid)
    assert code == EXIT_OK and shown["result"] == "ok" and shown["state"] == "enabled"
    assert [(n["event"], n["delivered"]) for n in shown["notifications"]] == [("enable", True)]
    assert euicc_states(cli.state) == {iccid: "enabled"}
    assert await server_events(server, iccid) == ["install", "enable"]
    assert await server_euicc_state(server, iccid) == "enabled"

    # Refusals, named as SGP.22 names them; nothing changes and nothing is sent.
    code, shown, err = await cli.json("lpa", "enable", iccid)
    assert code == EXIT_FAILED and (shown["result"], shown["resultCode"]) == ("profileNotInDisabledState", 2)
    assert "the eUICC refused: profileNotInDisabledState(2)" in err
    code, _, err = await cli.run("lpa", "delete", iccid)
    assert code == EXIT_FAILED and "profileNotInDisabledState(2)" in err
    assert euicc_states(cli.state) == {iccid: "enabled"}
    assert await server_events(server, iccid) == ["install", "enable"]

    code, out, _ = await cli.run("lpa", "disable", iccid)
    assert code == EXIT_OK and out.splitlines()[0] == f"disabled {iccid}" and "disable  delivered to" in out
    assert euicc_states(cli.state) == {iccid: "disabled"}
    assert await server_euicc_state(server, iccid) == "disabled"
    code, shown, _ = await cli.json("lpa", "disable", iccid)
    assert code == EXIT_FAILED and shown["result"] == "profileNotInEnabledState"

    code, shown, _ = await cli.json("lpa", "delete", iccid)
    assert code == EXIT_OK and shown["state"] == "deleted"
    assert [(n["event"], n["delivered"]) for n in shown["notifications"]] == [("delete", True)]
    assert euicc_states(cli.state) == {}
    assert await server_events(server, iccid) == ["install", "enable", "disable", "delete"]
    assert await server_euicc_state(server, iccid) == "deleted"
    assert es10.list_notifications(VirtualEuicc.open(cli.state)) == []

    # The server's own view, as `smdp profile list` shows it.
    cli.capsys.readouterr()
    db_url = str(server.runtime.settings.database_url)  # type: ignore[attr-defined]
    code = await asyncio.to_thread(main, ["profile", "list", "--json", "--data-dir", str(server.data_dir), "--database-url", db_url])
    rows = {r["iccid"]: r for r in json.loads(cli.capsys.readouterr().out)}
    assert code == EXIT_OK and rows[iccid]["euiccState"] == "deleted"


async def test_unknown_iccid_and_bad_identifiers(server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli, iccid = await installed(server, tmp_path, capsys)
    other = demo_iccid()
    for operation in ("enable", "disable", "delete"):
        code, shown, err = await cli.json("lpa", operation, other)
        assert code == EXIT_FAILED and (shown["result"], shown["resultCode"]) == ("iccidOrAidNotFound", 1), operation
        assert f"{operation} {other}: the eUICC refused: iccidOrAidNotFound(1)" in err
    code, _, err = await cli.run("lpa", "enable", "12AB")
    assert code == EXIT_USAGE and "neither an ICCID" in err
    # By ISD-P AID works too (lpac's convention: 32 hex digits).
    (view,) = VirtualEuicc.open(cli.state).installed_profiles()
    code, shown, _ = await cli.json("lpa", "enable", view.isdp_aid, "--no-send")
    assert code == EXIT_OK and shown["state"] == "enabled"
    assert [(n["event"], n["delivered"]) for n in shown["notifications"]] == [("enable", False)]
    assert await server_events(server, iccid) == ["install"]  # --no-send: still pending on the eUICC
    code, _, _ = await cli.run("lpa", "notifications", "--send")
    assert code == EXIT_OK and await server_events(server, iccid) == ["install", "enable"]


async def test_enabling_another_profile_disables_the_enabled_one(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli, first = await installed(server, tmp_path, capsys)
    second = demo_iccid()
    imported = await import_profile(server.db, demo_package(second))
    code, _, err = await cli.run("lpa", "download", f"LPA:1${server.address}${imported.matching_id}")
    assert code == EXIT_OK, err
    assert (await cli.run("lpa", "enable", first))[0] == EXIT_OK
    code, shown, _ = await cli.json("lpa", "enable", second, "--refresh")
    assert code == EXIT_OK
    # SGP.22 5.7.16: the previously enabled Profile is disabled first, each with its own Notification.
    assert [(n["event"], n["iccid"]) for n in shown["notifications"]] == [("disable", first), ("enable", second)]
    assert euicc_states(cli.state) == {first: "disabled", second: "enabled"}
    assert await server_euicc_state(server, first) == "disabled"
    assert await server_euicc_state(server, second) == "enabled"


async def test_unreachable_notification_address_exits_3_but_the_operation_is_done(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = "127.0.0.1:1"
    cli, iccid = await installed(
        server, tmp_path, capsys, notificationConfigurationInfo=[{"events": ["enable", "disable", "delete"], "address": nowhere}]
    )
    code, shown, err = await cli.json("lpa", "enable", iccid)
    assert code == EXIT_UNREACHABLE and shown["state"] == "enabled"
    assert [(n["event"], n["address"], n["delivered"]) for n in shown["notifications"]] == [("enable", nowhere, False)]
    assert f"enabled {iccid} on the eUICC, but 1 notification(s) could not reach the SM-DP+" in err
    assert euicc_states(cli.state) == {iccid: "enabled"}
    assert [n.event for n in es10.list_notifications(VirtualEuicc.open(cli.state))] == ["enable"]  # kept for a retry


async def test_nickname_set_and_clear(server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli, iccid = await installed(server, tmp_path, capsys)
    code, shown, _ = await cli.json("lpa", "nickname", iccid, "Travel SIM")
    assert code == EXIT_OK and shown["nickname"] == "Travel SIM"
    code, rows, _ = await cli.json("lpa", "list")
    assert [(r["iccid"], r["nickname"]) for r in rows] == [(iccid, "Travel SIM")]
    code, out, _ = await cli.run("lpa", "list")
    assert out.rstrip().endswith("(Travel SIM)")

    code, out, _ = await cli.run("lpa", "nickname", iccid)
    assert code == EXIT_OK and out.strip() == f"nickname of {iccid} cleared"
    code, rows, _ = await cli.json("lpa", "list")
    assert rows[0]["nickname"] is None
    assert (await cli.run("lpa", "nickname", iccid, "again"))[0] == EXIT_OK
    assert (await cli.run("lpa", "nickname", iccid, ""))[0] == EXIT_OK  # an empty name clears it too
    assert VirtualEuicc.open(cli.state).installed_profiles()[0].nickname is None

    code, shown, err = await cli.json("lpa", "nickname", demo_iccid(), "x")
    assert code == EXIT_FAILED and shown["result"] == "iccidNotFound" and "iccidNotFound(1)" in err
    code, _, err = await cli.run("lpa", "nickname", iccid, "x" * 65)
    assert code == EXIT_USAGE and "at most 64 characters" in err


def test_result_codes_are_named_and_the_euicc_refuses_a_long_nickname(tmp_path: Path, pki_manifest: Path) -> None:
    code = es10.ResultCode("EnableProfile", 2)
    assert code == 2 and not code.ok and str(code) == "profileNotInDisabledState(2)" and json.dumps(code) == "2"
    assert str(es10.ResultCode("DisableProfile", 5)) == "catBusy(5)"
    assert str(es10.ResultCode("DeleteProfile", 3)) == "disallowedByPolicy(3)"
    assert str(es10.ResultCode("DeleteProfile", 99)) == "unknownResult(99)"
    with pytest.raises(es10.ProfileOperationError, match=r"EnableProfile: the eUICC answered catBusy\(5\)"):
        es10.ResultCode("EnableProfile", 5).raise_for_error()
    es10.ResultCode("SetNickname", 0).raise_for_error()

    from smdp.codec import asn1
    from smdp.profiles.saip import encode_iccid

    euicc = open_euicc(tmp_path, pki_manifest)
    request = asn1.rsp().encode("SetNicknameRequest", {"iccid": encode_iccid(demo_iccid()), "profileNickname": "y" * 65})
    with pytest.raises(EuiccCommandError, match="longer than 64"):
        euicc.process(request)


# --- certificates from files -------------------------------------------------------------------------


def forged_eum(tmp_path: Path, server: RunningServer) -> Path:
    """An EUM certificate naming the SM-DP+'s CI as its issuer, but signed by some other key."""
    from smdp.crypto.ecdsa import Curve
    from smdp.pki.files import write_certificate
    from smdp.pki.issue import issue_ci, issue_eum
    from smdp.pki.store import load_certificate

    _, other_key = issue_ci(Curve.NIST_P256, common_name="Impostor CI")
    cert, _ = issue_eum(load_certificate(server.manifest.parent / "nist" / "ci.crt.der"), other_key,
                        eins=["89049032"], curve=Curve.NIST_P256)  # fmt: skip
    write_certificate(tmp_path / "forged-eum.der", cert)
    return tmp_path / "forged-eum.der"


@pytest.mark.parametrize(
    "eum,expected",
    [("forged", ("8.1.2", "6.1")), ("foreign-ci", ("8.11.1", "3.9"))],
    ids=["signature-not-by-the-ci", "issued-by-an-unknown-ci"],
)
async def test_eum_not_issued_by_the_ci_is_refused(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], eum: str, expected: tuple[str, str]
) -> None:
    """SGP.22 ES9+.AuthenticateClient: an EUM certificate failing verification is 8.1.2/6.1; one chaining
    to a CI the SM-DP+ doesn't know is 8.11.1/3.9 (as in test_download_errors)."""
    if eum == "forged":
        path = forged_eum(tmp_path, server)
    else:
        path = crafted_euicc_manifest(tmp_path / "foreign", server.manifest, foreign_ci=True).parent / "eum.crt.der"
    cli = Cli(server, tmp_path, capsys, tmp_path / "euicc.json")
    code, result, err = await cli.json("lpa", "download", f"LPA:1${server.address}$NO-SUCH-ID", "--eum-cert", str(path))
    assert code == EXIT_FAILED and "stage" in result, (result, err)
    assert (result["stage"], result["subject_code"], result["reason_code"]) == ("authenticateClient", *expected)
    # Not remembered: the next command presents the manifest's EUM again, and the profile downloads.
    imported = await import_profile(server.db, demo_package(demo_iccid()))
    code, result, _ = await cli.json("lpa", "download", f"LPA:1${server.address}${imported.matching_id}")
    assert code == EXIT_OK, result


async def test_expired_eum_with_its_euicc_from_files(server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crafted = crafted_euicc_manifest(tmp_path / "expired", server.manifest, eum_validity=PAST).parent
    cli = Cli(server, tmp_path, capsys, tmp_path / "euicc.json")
    files = ["--euicc-cert", str(crafted / "euicc.crt.der"), "--euicc-key", str(crafted / "euicc.key.pem"),
             "--eum-cert", str(crafted / "eum.crt.der")]  # fmt: skip
    code, result, _ = await cli.json("lpa", "download", f"LPA:1${server.address}$NO-SUCH-ID", *files)
    assert (code, result["subject_code"], result["reason_code"]) == (EXIT_FAILED, "8.1.2", "6.3")
    assert result["eid"] == VirtualEuicc.open(tmp_path / "euicc.json", identity=_identity(crafted)).eid

    # The default eUICC state has another EID: say so, and how to fix it.
    other = tmp_path / "other.json"
    open_euicc(tmp_path, server.manifest, name="other").state_path.rename(other)
    code, _, err = await cli.run("lpa", "list", *files, euicc=other)
    assert code == EXIT_FAILED and "give it its own --euicc FILE" in err


def _identity(directory: Path):  # type: ignore[no-untyped-def]
    from smdp.euicc.credentials import IdentityFiles

    return IdentityFiles(directory / "euicc.crt.der", directory / "euicc.key.pem", directory / "eum.crt.der")


async def test_identity_file_errors_are_one_line(server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crafted = crafted_euicc_manifest(tmp_path / "crafted", server.manifest).parent
    cli = Cli(server, tmp_path, capsys, tmp_path / "euicc.json")
    assert (await cli.run("lpa", "list"))[0] == EXIT_OK  # creates the state with the manifest's identity

    code, _, err = await cli.run("lpa", "list", "--euicc-key", str(crafted / "euicc.key.pem"), euicc=tmp_path / "new.json")
    assert code == EXIT_FAILED and len(err.splitlines()) == 1
    assert f"{crafted / 'euicc.key.pem'}: this key does not match the eUICC certificate of the PKI manifest" in err
    code, _, err = await cli.run("lpa", "list", "--euicc-cert", str(crafted / "euicc.crt.der"), euicc=tmp_path / "new.json")
    assert code == EXIT_FAILED and f"{crafted / 'euicc.crt.der'}: the eUICC key of the PKI manifest does not match" in err
    code, _, err = await cli.run("lpa", "list", "--eum-cert", str(tmp_path / "missing.der"))
    assert code == EXIT_USAGE and f"--eum-cert {tmp_path / 'missing.der'}: no such file" in err
    (tmp_path / "junk.der").write_bytes(b"junk")
    code, _, err = await cli.run("lpa", "list", "--eum-cert", str(tmp_path / "junk.der"))
    assert code == EXIT_FAILED and "junk.der: not a PEM or DER X.509 certificate" in err and len(err.splitlines()) == 1
    code, _, err = await cli.run("lpa", "list", "--euicc-key", str(crafted / "euicc.crt.der"))
    assert code == EXIT_FAILED and "euicc.crt.der: not an unencrypted PEM private key" in err


async def test_lpac_sees_what_the_builtin_lpa_left(server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_lpac_integration import lpac_binary

    binary = lpac_binary()
    cli, iccid = await installed(server, tmp_path, capsys)
    assert (await cli.run("lpa", "enable", iccid, "--no-send"))[0] == EXIT_OK
    assert (await cli.run("lpa", "nickname", iccid, "from smdp"))[0] == EXIT_OK

    from smdp.euicc.apdu import IsdrCard
    from smdp.euicc.lpac import run_lpac

    out = io.BytesIO()
    status = await run_lpac(IsdrCard(VirtualEuicc.open(cli.state)), binary, ["profile", "list"], output=out)
    (payload,) = [line["payload"] for line in map(json.loads, out.getvalue().splitlines()) if line["type"] == "lpa"]
    assert status == 0 and payload["code"] == 0
    ((profile),) = [p for p in payload["data"] if p["iccid"] == iccid]
    assert (profile["profileState"], profile["profileNickname"]) == ("enabled", "from smdp")

