"""Secrets at rest: the data directory is its owner's alone (0700, files 0600, SQLite's -wal/-shm included), and
neither the data directory nor the database (SQLite files, PostgreSQL) holds a profile's Ki/OPc or a
confirmation code (or its SHA-256) in clear: packages and code digests are sealed with master.key."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

import pytest
from sqlmodel import select

from smdp.cli import main
from smdp.config import load_settings, master_sealer
from smdp.crypto.cc import open_confirmation_code_digest, seal_confirmation_code
from smdp.crypto.sealed import Sealer
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import luhn_check_digit
from smdp.services.profiles import import_profile, open_package, seal_package
from smdp.store.db import Database
from smdp.store.files import secure_data_dir, sqlite_files
from smdp.store.tables import Profile
from tests.conftest import RunningServer, start_server
from tests.es2_tools import operator_client, operator_id
from tests.es9_tools import open_euicc, run_download


def new_iccid() -> str:
    body = "8988247" + f"{secrets.randbelow(10**11):011d}"
    return body + luhn_check_digit(body)


class Secrets:
    """A profile's Ki/OPc and a confirmation code, and every form in which they must not be found."""

    def __init__(self) -> None:
        self.ki, self.opc = os.urandom(16), os.urandom(16)
        self.code = f"{secrets.randbelow(9 * 10**7) + 10**7}"  # 8 digits, also valid hex
        self.iccid = new_iccid()
        self.der = build_demo_profile(self.iccid, "001010000000001", self.ki, self.opc)

    def needles(self) -> dict[str, bytes]:
        values = {
            "Ki": self.ki,
            "OPc": self.opc,
            "SHA256(code)": hashlib.sha256(self.code.encode()).digest(),
            "SHA256(hex-decoded code)": hashlib.sha256(bytes.fromhex(self.code)).digest(),
        }
        found: dict[str, bytes] = {"the code": self.code.encode()}
        for name, value in values.items():
            found[name] = value
            found[f"{name} hex"] = value.hex().encode()
            found[f"{name} HEX"] = value.hex().upper().encode()
            found[f"{name} base64"] = base64.b64encode(value).rstrip(b"=")
        return found


def hits(files: list[Path], needles: dict[str, bytes]) -> list[str]:
    """Where any of ``needles`` occurs in ``files`` (["NAME in PATH", ...])."""
    found = []
    for path in files:
        data = path.read_bytes()
        found += [f"{name} in {path}" for name, needle in needles.items() if needle in data]
    return found


def data_files(data_dir: Path, database_url: str) -> list[Path]:
    """Every regular file in the data directory, and the SQLite database's files wherever they are."""
    files = [p for p in data_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted(set(files) | {p for p in sqlite_files(database_url) if p.exists()})


def assert_private(data_dir: Path, database_url: str) -> None:
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for path in data_dir.rglob("*"):
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {mode:04o}"
    for path in sqlite_files(database_url):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


async def _profile(db: Database, iccid: str) -> Profile:
    async with db.transaction() as session:
        return (await session.exec(select(Profile).where(Profile.iccid == iccid))).one()


# --- the running server: SQLite ------------------------------------------------------------------------------


async def test_server_data_and_sqlite_files_are_private_and_hold_no_clear_secrets(server: RunningServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'smdp.db'}"  # the fixture's database: next to the data directory, not in it
    s = Secrets()
    imported = await import_profile(server.db, s.der, confirmation_code=s.code)
    euicc = open_euicc(tmp_path, server.manifest)
    result = await run_download(euicc, f"LPA:1${server.address}${imported.matching_id}", confirmation_code=s.code)
    assert result.ok, result.to_json()
    assert euicc.installed_profiles()[0].package == s.der  # unsealed to build the BPP, byte for byte

    wal, shm = (tmp_path / "smdp.db-wal"), (tmp_path / "smdp.db-shm")
    assert wal.exists() and shm.exists()  # the server holds the database open in WAL mode
    assert_private(server.data_dir, url)
    files = data_files(server.data_dir, url)
    assert {tmp_path / "smdp.db", wal, shm, server.data_dir / "master.key"} <= set(files)
    assert hits(files, s.needles()) == []
    # the search is not vacuous: the profile is in those files (its ICCID in clear), and a clear package would be found
    assert hits(files, {"ICCID": s.iccid.encode()})
    (tmp_path / "clear.der").write_bytes(s.der)
    assert {h.split(" in ")[0] for h in hits([tmp_path / "clear.der"], s.needles())} == {"Ki", "OPc"}

    profile = await _profile(server.db, s.iccid)
    sealer = server.download.sealer
    assert open_package(sealer, profile) == s.der
    assert open_confirmation_code_digest(sealer, s.iccid, profile.cc_hash) == hashlib.sha256(s.code.encode()).digest()  # type: ignore[arg-type]


async def test_es2_confirmation_code_is_stored_sealed_and_still_checks(server: RunningServer, tmp_path: Path) -> None:
    s = Secrets()
    es2 = await operator_client(server, "acme")
    try:
        owner = await operator_id(server, "acme")
        await import_profile(server.db, s.der, stock=True, operator_id=owner, profile_type="t")
        await es2.call("downloadOrder", iccid=s.iccid)
        await es2.call("confirmOrder", iccid=s.iccid, matchingId="SEALED-CC-1", confirmationCode=s.code, releaseFlag=True)
    finally:
        await es2.close()
    euicc = open_euicc(tmp_path, server.manifest)
    wrong = await run_download(euicc, f"LPA:1${server.address}$SEALED-CC-1", confirmation_code="00000000")
    assert (wrong.subject_code, wrong.reason_code) == ("8.2.7", "3.8")
    right = await run_download(euicc, f"LPA:1${server.address}$SEALED-CC-1", confirmation_code=s.code)
    assert right.ok, right.to_json()
    url = f"sqlite:///{tmp_path / 'smdp.db'}"
    assert hits(data_files(server.data_dir, url), s.needles()) == []


async def test_an_earlier_data_directory_is_made_private_with_a_warning(
    tmp_path: Path, pki_manifest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "old").mkdir(parents=True)
    os.chmod(data, 0o755)
    os.chmod(data / "old", 0o755)
    loose = [data / "server.json", data / "old" / "notes.txt"]
    for path in loose:
        path.write_text("{}\n")
        os.chmod(path, 0o644)
    outside = tmp_path / "shared.txt"  # reached through a symlink: not ours to change
    outside.write_text("x")
    os.chmod(outside, 0o644)
    (data / "link").symlink_to(outside)
    database = tmp_path / "elsewhere.db"  # --database-url outside the data directory: its files are fixed too
    database.write_bytes(b"")
    os.chmod(database, 0o644)
    url = f"sqlite:///{database}"
    caplog.set_level(logging.WARNING, logger="smdp.store.files")
    server, stack = await start_server(data, pki_manifest, url)
    try:
        warnings = [r.getMessage() for r in caplog.records if r.name == "smdp.store.files"]
        assert len(warnings) == 1
        for path in [data, data / "old", *loose, database]:
            assert str(path) in warnings[0]
        assert "0644->0600" in warnings[0] and "0755->0700" in warnings[0]
        assert str(outside) not in warnings[0] and stat.S_IMODE(outside.stat().st_mode) == 0o644
        assert_private(data, url)
    finally:
        await stack.aclose()
        await server.db.dispose()
    caplog.clear()
    assert secure_data_dir(load_settings(data, url, pki_manifest)) == []  # the next start has nothing to fix
    assert not [r for r in caplog.records if r.name == "smdp.store.files"]


async def test_a_new_data_directory_gives_no_warning_and_sqlite_files_are_0600_whatever_the_umask(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "fresh"
    settings = load_settings(data)
    old = os.umask(0o022)
    try:
        caplog.set_level(logging.WARNING, logger="smdp.store.files")
        assert secure_data_dir(settings) == []
        assert os.umask(0o077) == 0o077  # secure_data_dir set it
        db = Database(settings.database_url)
        await db.create_all()
        db.sealer = master_sealer(settings)
        s = Secrets()
        await import_profile(db, s.der, confirmation_code=s.code)
        assert (data / "smdp.db-wal").exists() and (data / "smdp.db-shm").exists()
        assert_private(data, settings.database_url)
        assert hits(data_files(data, settings.database_url), s.needles()) == []
        await db.dispose()
    finally:
        os.umask(old)
    assert not [r for r in caplog.records if r.name == "smdp.store.files"]


# --- the CLI -------------------------------------------------------------------------------------------------


def test_cli_import_seals_with_the_data_directorys_master_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    s = Secrets()
    package = tmp_path / "p.der"
    package.write_bytes(s.der)
    assert main(["profile", "import", str(package), "--data-dir", str(data), "--confirmation-code", s.code, "--json"]) == 0
    capsys.readouterr()
    settings = load_settings(data)
    assert_private(data, settings.database_url)
    assert hits(data_files(data, settings.database_url), s.needles()) == []

    async def stored() -> Profile:
        db = Database(settings.database_url)
        try:
            return await _profile(db, s.iccid)
        finally:
            await db.dispose()

    import asyncio

    profile = asyncio.run(stored())
    sealer = master_sealer(settings)
    assert open_package(sealer, profile) == s.der
    hex_digest = open_confirmation_code_digest(sealer, s.iccid, profile.cc_hash_hex, hex_decoded=True)  # type: ignore[arg-type]
    assert hex_digest == hashlib.sha256(bytes.fromhex(s.code)).digest()


def test_cli_generated_profiles_are_stored_sealed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    data = tmp_path / "data"
    data.mkdir()  # only serve and pki init create a data directory
    template = tmp_path / "template.der"
    template.write_bytes(build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16)))
    (tmp_path / "op.hex").write_text(os.urandom(16).hex())
    assert main(["profile-type", "create", "sealed", "--template", str(template), "--data-dir", str(data)]) == 0
    keys = tmp_path / "keys.csv"  # the operator's key file: Ki/OPc in clear by design, so not in the data directory
    assert main(["profile", "generate", "--type", "sealed", "--count", "5", "--iccid-start", "894900000000000700",
                 "--imsi-start", "001010000000700", "--op-file", str(tmp_path / "op.hex"), "--key-file", str(keys),
                 "--data-dir", str(data), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    rows = list(csv.DictReader(keys.open()))
    assert len(rows) == 5
    needles = {}
    for row in rows:
        for name in ("ki", "opc"):
            value = bytes.fromhex(row[name])
            needles.update({f"{row['iccid']} {name}": value, f"{row['iccid']} {name} hex": value.hex().encode(),
                            f"{row['iccid']} {name} HEX": value.hex().upper().encode()})  # fmt: skip
    settings = load_settings(data)
    assert_private(data, settings.database_url)
    assert hits(data_files(data, settings.database_url), needles) == []


# --- sealing contexts ---------------------------------------------------------------------------------------


def test_sealed_values_open_only_for_their_profile_and_with_their_key() -> None:
    sealer, other = Sealer(os.urandom(32)), Sealer(os.urandom(32))
    s, t = Secrets(), Secrets()
    sealed = seal_package(sealer, s.iccid, s.der)
    assert s.ki not in sealed and s.opc not in sealed
    assert seal_package(sealer, s.iccid, s.der) != sealed  # a fresh nonce each time
    assert open_package(sealer, Profile(iccid=s.iccid, state="Released", package_sealed=sealed)) == s.der
    with pytest.raises(ValueError):  # copied to another profile's row
        open_package(sealer, Profile(iccid=t.iccid, state="Released", package_sealed=sealed))
    with pytest.raises(ValueError):  # another data directory's key
        open_package(other, Profile(iccid=s.iccid, state="Released", package_sealed=sealed))
    cc, cc_hex = seal_confirmation_code(sealer, s.iccid, s.code)
    assert cc is not None and cc_hex is not None
    assert seal_confirmation_code(sealer, s.iccid, s.code)[0] != cc  # equal codes do not show as equal
    assert seal_confirmation_code(sealer, s.iccid, None) == (None, None)
    with pytest.raises(ValueError):
        open_confirmation_code_digest(sealer, t.iccid, cc)
    with pytest.raises(ValueError):  # the plain digest's blob is not the hex variant's
        open_confirmation_code_digest(sealer, s.iccid, cc, hex_decoded=True)


async def test_a_writer_without_a_master_key_refuses_to_store(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'smdp.db'}")
    await db.create_all()
    try:
        with pytest.raises(RuntimeError, match="master key"):
            await import_profile(db, Secrets().der)
    finally:
        await db.dispose()


# --- PostgreSQL ---------------------------------------------------------------------------------------------


async def test_postgresql_holds_no_clear_ki_opc_or_code(tmp_path: Path, pki_manifest: Path, postgres_url: str) -> None:
    import asyncpg

    server, stack = await start_server(tmp_path / "data", pki_manifest, postgres_url)
    s = Secrets()
    try:
        imported = await import_profile(server.db, s.der, confirmation_code=s.code)
        euicc = open_euicc(tmp_path, server.manifest)
        result = await run_download(euicc, f"LPA:1${server.address}${imported.matching_id}", confirmation_code=s.code)
        assert result.ok, result.to_json()
        assert euicc.installed_profiles()[0].package == s.der
    finally:
        await stack.aclose()
        await server.db.dispose()
    conn = await asyncpg.connect(postgres_url)
    try:
        package = await conn.fetchval("SELECT package_sealed FROM profile WHERE iccid = $1", s.iccid)
        assert isinstance(package, bytes) and len(package) > len(s.der)
        assert s.ki not in package and s.opc not in package
        dump = bytearray()
        tables = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{table["table_name"]}"'):
                for value in row.values():
                    dump += value if isinstance(value, bytes) else str(value).encode()
                    dump += b"\x00"
    finally:
        await conn.close()
    assert s.iccid.encode() in dump  # the dump does hold the profile
    assert [name for name, needle in s.needles().items() if needle in dump] == []
    assert_private(tmp_path / "data", postgres_url)
    assert hits(data_files(tmp_path / "data", postgres_url), s.needles()) == []
