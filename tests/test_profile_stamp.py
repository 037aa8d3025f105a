"""One profile file, many profiles: ``profile import --iccid`` (ICCID stamping), ``profile export`` and
``profile delete``.

Every GSMA TS.48 test profile carries ICCID 89000123456789012341; stamping gives a package another ICCID
in its ProfileHeader and its EF.ICCID and changes not one other byte, so the same file imports any number
of times and each copy downloads and installs under its own ICCID. The TS.48 tests are skipped without the
GSMA data (SMDP_TEST_DATA, see conftest.py); the demo profile's run everywhere.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from smdp.cli import EXIT_FAILED, EXIT_USAGE, main
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.inspect import inspect_package, render_tree
from smdp.profiles.saip import (
    SaipError,
    decode_profile_package,
    encode_header_iccid,
    encode_iccid,
    luhn_check_digit,
    validate_profile_package,
)
from smdp.profiles.stamp import stamp_iccid
from smdp.rsp.lifecycle import ProfileState, move
from smdp.services.profiles import (
    BUSY_STATES,
    ProfileBusyError,
    ProfileError,
    ProfileImportError,
    delete_profile,
    export_package,
    import_profile,
    list_profiles,
    open_package,
)
from smdp.store import profiles as profile_store
from smdp.store.db import Database
from smdp.store.tables import DownloadSession, Notification, Profile
from tests.conftest import RunningServer, require_ts48, table_rows, ts48_files
from tests.device_tools import authenticate, get_bpp, new_device
from tests.es9_tools import open_euicc, run_download

S = ProfileState
TS48_ICCID = "89000123456789012341"


def iccid(n: int) -> str:
    body = f"89882280{n:010d}"
    return body + luhn_check_digit(body)


def wrong_check_digit(n: int) -> str:
    good = iccid(n)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


def demo() -> bytes:
    return build_demo_profile("8949000000000000018", "001010000000001", bytes(range(16)), bytes(range(16, 32)))


def packages() -> list[tuple[str, bytes | None]]:
    """The demo profile, and every TS.48 file (None, skipped, without the GSMA data)."""
    return [("demo", demo()), *[(p.stem, p.read_bytes()) for p in ts48_files()]] + ([] if ts48_files() else [("ts48", None)])


# --- stamping (sans-IO) ---------------------------------------------------------------------------------


def expected_bytes(original: bytes, new: str) -> bytes:
    """``original`` with exactly the two ICCID fields overwritten: both codings are 10 bytes, so a stamped
    package has the same length and differs in those 20 bytes only."""
    old = decode_profile_package(original).iccid
    result = bytearray(original)
    for encode in (encode_header_iccid, encode_iccid):
        offset = original.find(encode(old))
        assert offset > 0 and original.find(encode(old), offset + 1) == -1
        result[offset : offset + 10] = encode(new)
    return bytes(result)


@pytest.mark.parametrize(("name", "der"), packages(), ids=[name for name, _ in packages()])
def test_stamping_changes_the_header_and_ef_iccid_and_nothing_else(name: str, der: bytes | None) -> None:
    if der is None:
        require_ts48()
    assert der is not None
    original = validate_profile_package(der)
    stamped = stamp_iccid(der, iccid(1))
    package = validate_profile_package(stamped)
    assert package.iccid == package.ef_iccid == iccid(1)
    assert stamped == expected_bytes(der, iccid(1))
    # decoded, too: the header and the PE-MF differ in their ICCID only, every other PE keeps its DER
    assert [e.name for e in package.elements] == [e.name for e in original.elements]
    assert {**package.header, "iccid": None} == {**original.header, "iccid": None}
    mf_before, mf_after = original.named("mf")[0].value, package.named("mf")[0].value
    assert {k: v for k, v in mf_after.items() if k != "ef-iccid"} == {k: v for k, v in mf_before.items() if k != "ef-iccid"}
    assert all(a.raw == b.raw for a, b in zip(original.elements[2:], package.elements[2:], strict=True))
    # the old ICCID is gone in both codings; stamping back gives the original bytes
    assert encode_header_iccid(original.iccid) not in stamped and encode_iccid(original.iccid) not in stamped
    assert stamp_iccid(stamped, original.iccid) == der


def test_inspect_shows_the_new_iccid_in_both_places() -> None:
    view = inspect_package(validate_profile_package(stamp_iccid(demo(), iccid(2))))
    assert view["iccid"] == view["efIccid"] == iccid(2)
    ef = next(f for e in view["elements"] if e["pe"] == "mf" for f in e["files"] if f["name"] == "ef-iccid")
    assert ef["iccid"] == iccid(2) and ef["content"] == encode_iccid(iccid(2)).hex().upper()
    tree = render_tree(view)
    assert f"ICCID {iccid(2)}   EF.ICCID {iccid(2)}" in tree and f"(ICCID {iccid(2)})" in tree


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (wrong_check_digit(3), "has check digit .* but the Luhn digit of .* is"),
        ("8988228000000000a12", "19 or 20 decimal digits"),
        ("898822800000012", "19 or 20 decimal digits"),
        ("898822800000000000012", "19 or 20 decimal digits"),
        ("1288228000000000012", "does not start with 89"),
    ],
)
def test_a_bad_iccid_is_refused_with_a_clear_message(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stamp_iccid(demo(), bad)


def test_an_inconsistent_package_is_reported_not_mended() -> None:
    """A package whose header and EF.ICCID disagree is refused as it is (the importer would refuse it too)."""
    der = demo()
    offset = der.find(encode_header_iccid("8949000000000000018"))
    broken = der[:offset] + encode_header_iccid(iccid(4)) + der[offset + 10 :]
    with pytest.raises(SaipError, match=r"differs from EF\.ICCID"):
        stamp_iccid(broken, iccid(5))


# --- import, export and delete against the database -----------------------------------------------------





async def _import_three(db: Database, files: list[bytes]) -> list[str]:
    iccids = [iccid(10 + n) for n in range(len(files))]
    for der, number in zip(files, iccids, strict=True):
        imported = await import_profile(db, der, iccid=number)
        assert imported.iccid == number and imported.file_iccid == decode_profile_package(der).iccid
    listed = [row["iccid"] for row in await list_profiles(db)]
    assert listed == iccids
    for row in await table_rows(db, Profile):
        package = validate_profile_package(open_package(db.sealer, row))  # type: ignore[arg-type]
        assert package.iccid == package.ef_iccid == row.iccid
    return iccids


async def test_three_ts48_files_import_into_one_database(db: Database) -> None:
    files = [path.read_bytes() for path in require_ts48()[:3]]
    await import_profile(db, files[0])  # as it is: 89000123456789012341
    with pytest.raises(ProfileImportError, match=f"ICCID {TS48_ICCID} already exists"):
        await import_profile(db, files[1])  # which is why --iccid exists
    await delete_profile(db, TS48_ICCID, force=True)
    await _import_three(db, files)


async def test_the_demo_profile_imports_three_times_into_one_database(db: Database) -> None:
    await _import_three(db, [demo()] * 3)


async def test_a_bad_iccid_stores_nothing(db: Database) -> None:
    with pytest.raises(ProfileImportError, match="Luhn"):
        await import_profile(db, demo(), iccid=wrong_check_digit(20))
    assert await table_rows(db, Profile) == []


async def test_export_gives_the_stored_package_which_imports_again_under_another_iccid(db: Database) -> None:
    await import_profile(db, demo(), iccid=iccid(30))
    exported = await export_package(db, iccid(30))
    assert exported == stamp_iccid(demo(), iccid(30))
    await import_profile(db, exported, iccid=iccid(31))
    assert [row["iccid"] for row in await list_profiles(db)] == [iccid(30), iccid(31)]
    with pytest.raises(ProfileError, match="no profile with ICCID"):
        await export_package(db, iccid(32))


async def _bring(db: Database, number: str, path: list[ProfileState]) -> None:
    """Walk profile ``number`` through ``path`` with the lifecycle's own transitions."""
    async with db.transaction() as session:
        row = await profile_store.profile_by_iccid(session, number, for_update=True)
        assert row is not None
        for state in path:
            move(row, state)
        await profile_store.save(session, row)


# state -> (imported as stock?, the transitions from there)
ROUTES: dict[ProfileState, tuple[bool, list[ProfileState]]] = {
    S.AVAILABLE: (True, []),
    S.ALLOCATED: (True, [S.ALLOCATED]),
    S.LINKED: (True, [S.LINKED]),
    S.CONFIRMED: (True, [S.ALLOCATED, S.CONFIRMED]),
    S.RELEASED: (False, []),
    S.DOWNLOADED: (False, [S.DOWNLOADED]),
    S.INSTALLED: (False, [S.DOWNLOADED, S.INSTALLED]),
    S.ERROR: (False, [S.DOWNLOADED, S.ERROR]),
    S.UNAVAILABLE: (True, [S.UNAVAILABLE]),
}


def test_the_busy_states_are_the_order_and_download_ones() -> None:
    assert set(ROUTES) == set(ProfileState)
    assert set(BUSY_STATES) == {s.value for s in (S.ALLOCATED, S.LINKED, S.CONFIRMED, S.RELEASED, S.DOWNLOADED)}


@pytest.mark.parametrize("state", list(ProfileState), ids=[s.value for s in ProfileState])
async def test_delete_refuses_a_busy_profile_unless_forced(db: Database, state: ProfileState) -> None:
    stock, path = ROUTES[state]
    await import_profile(db, demo(), iccid=iccid(40), stock=stock)
    await import_profile(db, demo(), iccid=iccid(41))  # a neighbour, untouched
    await _bring(db, iccid(40), path)
    if state.value in BUSY_STATES:
        with pytest.raises(ProfileBusyError, match=f"is {state.value}: .*--force") as refused:
            await delete_profile(db, iccid(40))
        assert refused.value.profile_state == state.value
        assert len(await table_rows(db, Profile)) == 2
    deleted = await delete_profile(db, iccid(40), force=state.value in BUSY_STATES)
    assert deleted.state == state.value
    assert [row.iccid for row in await table_rows(db, Profile)] == [iccid(41)]
    with pytest.raises(ProfileError, match="no profile with ICCID"):
        await delete_profile(db, iccid(40), force=True)


# --- with the server and a virtual eUICC ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "der"), packages()[:2], ids=[name for name, _ in packages()[:2]])
async def test_a_stamped_profile_downloads_and_installs_under_its_new_iccid(
    server: RunningServer, tmp_path: Path, name: str, der: bytes | None
) -> None:
    if der is None:
        require_ts48()
    assert der is not None
    for n, matching_id in ((50, "STAMP-A"), (51, "STAMP-B")):  # one file, two profiles, one eUICC each
        await import_profile(server.db, der, iccid=iccid(n), matching_id=matching_id)
    euicc = open_euicc(tmp_path, server.manifest)
    result = await run_download(euicc, f"LPA:1${server.address}$STAMP-B")
    assert result.ok, result.to_json()
    assert result.iccid == iccid(51)
    [installed] = euicc.installed_profiles()
    assert installed.iccid == iccid(51) and installed.package == stamp_iccid(der, iccid(51))
    package = validate_profile_package(installed.package)
    assert package.iccid == package.ef_iccid == iccid(51)
    # Installed: deleted without --force, with its session and its install notification
    assert len(await table_rows(server.db, DownloadSession)) == 1 and len(await table_rows(server.db, Notification)) == 1
    deleted = await delete_profile(server.db, iccid(51))
    assert (deleted.state, deleted.download_sessions, deleted.notifications) == ("Installed", 1, 1)
    assert await table_rows(server.db, DownloadSession) == [] and await table_rows(server.db, Notification) == []
    assert [row.iccid for row in await table_rows(server.db, Profile)] == [iccid(50)]


async def test_a_profile_whose_bpp_is_out_is_deleted_only_with_force(server: RunningServer, tmp_path: Path) -> None:
    await import_profile(server.db, demo(), iccid=iccid(60), matching_id="STAMP-BUSY")
    device = new_device(tmp_path, server.manifest, "busy")
    transaction_id, auth = await authenticate(server.download, device, "STAMP-BUSY", server.address)
    await get_bpp(server.download, device, transaction_id, auth, None)
    [row] = await table_rows(server.db, Profile)
    assert row.state == "Downloaded"
    with pytest.raises(ProfileBusyError, match="Downloaded: its Bound Profile Package was delivered"):
        await delete_profile(server.db, iccid(60))
    assert len(await table_rows(server.db, DownloadSession)) == 1
    deleted = await delete_profile(server.db, iccid(60), force=True)
    assert (deleted.download_sessions, deleted.notifications) == (1, 0)
    assert await table_rows(server.db, DownloadSession) == [] and await table_rows(server.db, Profile) == []


# --- the commands ---------------------------------------------------------------------------------------------


def smdp(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_export_delete_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMDP_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    where = ["--data-dir", str(data)]
    source = tmp_path / "demo.der"
    source.write_bytes(demo())

    code, out, _ = smdp(capsys, "profile", "import", str(source), "--iccid", iccid(70), "--json", *where)
    assert code == 0 and json.loads(out)["iccid"] == iccid(70) and json.loads(out)["fileIccid"] == "8949000000000000018"
    code, _, err = smdp(capsys, "profile", "import", str(source), "--iccid", wrong_check_digit(71), *where)
    assert code == EXIT_USAGE and err.startswith("smdp: --iccid: ") and "Luhn" in err and len(err.splitlines()) == 1

    exported = tmp_path / "out.der"
    code, out, _ = smdp(capsys, "profile", "export", iccid(70), str(exported), *where)
    assert code == 0 and "mode 0600" in out
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert exported.read_bytes() == stamp_iccid(demo(), iccid(70))
    code, _, err = smdp(capsys, "profile", "export", iccid(70), str(exported), *where)
    assert code == EXIT_USAGE and "--force" in err
    assert smdp(capsys, "profile", "export", iccid(70), str(exported), "--force", *where)[0] == 0
    code, _, err = smdp(capsys, "profile", "export", iccid(79), str(tmp_path / "none.der"), *where)
    assert code == EXIT_FAILED and f"no profile with ICCID {iccid(79)}" in err and not (tmp_path / "none.der").exists()

    assert smdp(capsys, "profile", "import", str(exported), "--iccid", iccid(71), *where)[0] == 0
    code, out, _ = smdp(capsys, "profile", "inspect", str(exported))
    assert f"ICCID {iccid(70)}   EF.ICCID {iccid(70)}" in out
    code, out, _ = smdp(capsys, "profile", "list", "--json", *where)
    assert [row["iccid"] for row in json.loads(out)] == [iccid(70), iccid(71)]

    code, _, err = smdp(capsys, "profile", "delete", iccid(71), *where)
    assert code == EXIT_FAILED and len(err.splitlines()) == 1
    assert err.startswith(f"smdp: profile {iccid(71)} is Released: ") and "--force" in err
    code, out, _ = smdp(capsys, "profile", "delete", iccid(71), "--force", "--json", *where)
    assert code == 0 and json.loads(out) == {"iccid": iccid(71), "state": "Released", "downloadSessions": 0, "notifications": 0}
    code, out, _ = smdp(capsys, "profile", "list", "--json", *where)
    assert [row["iccid"] for row in json.loads(out)] == [iccid(70)]
