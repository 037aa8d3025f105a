"""Atomic writes (smdp.atomic.write_atomic) and the callers that use it: exact mode whatever the
umask, the old content intact after a failure, no temporary file left behind, no overwrite on request."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import smdp.atomic
from smdp.atomic import write_atomic


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_bytes_and_text_exactly(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.bin", b"\x00\xff\r\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xff\r\n"
    write_atomic(tmp_path / "a.txt", "é\r\nx\n")  # UTF-8, newlines as given (no translation)
    assert (tmp_path / "a.txt").read_bytes() == "é\r\nx\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.txt"]  # no temporary file left


def test_default_mode_is_0600_even_with_a_permissive_umask(tmp_path: Path, permissive_umask: None) -> None:
    write_atomic(tmp_path / "secret", "token")
    assert _mode(tmp_path / "secret") == 0o600


def test_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_atomic(tmp_path / "cert.der", b"x", 0o644)  # the umask would have made it 0600
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "cert.der") == 0o644


def test_replacing_a_file_gives_it_the_new_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    path.chmod(0o666)
    write_atomic(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o600


def test_a_failure_mid_write_keeps_the_old_content_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    path.write_text("old state")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(smdp.atomic.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "new state")
    assert path.read_text() == "old state"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(smdp.atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "ledger.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_false_refuses_an_existing_file_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    write_atomic(path, "first", overwrite=False)
    assert path.read_text() == "first"
    with pytest.raises(FileExistsError):
        write_atomic(path, "second", overwrite=False)
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.csv"]


def test_a_missing_directory_is_an_error_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nowhere" / "file", b"x")
    assert list(tmp_path.iterdir()) == []


def test_the_module_depends_on_no_other_smdp_module() -> None:
    source = Path(smdp.atomic.__file__).read_text()
    assert "from smdp" not in source and "import smdp" not in source


# --- the callers ------------------------------------------------------------------------------------


def _euicc_state(path: Path) -> None:
    from smdp.euicc.state import EuiccState, save_state

    save_state(path, EuiccState(eid="89049032123451234512345678901235", curve="nist", manifest="/pki.toml"))


def _usage_ledger(path: Path) -> None:
    from smdp.lpa.usage import UsageLedger

    UsageLedger(path).save()


def _database_url(path: Path) -> None:
    from smdp.config import DATABASE_URL_FILE, Settings, remember_database_url

    assert path.name == DATABASE_URL_FILE
    remember_database_url(Settings(path.parent, "postgresql://u:secret@db/smdp", path.parent / "pki.toml"))


def _operator_token(path: Path) -> None:
    from smdp.services.operators import _write_secret

    _write_secret(path, "smdp_token")


def _private_key(path: Path) -> None:
    from smdp.pki.files import write_private_key

    write_private_key(path, ec.generate_private_key(ec.SECP256R1()))


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("euicc.json", _euicc_state),
        ("usage.json", _usage_ledger),
        ("database-url", _database_url),
        ("default.token", _operator_token),
        ("dpauth.key.pem", _private_key),
    ],
    ids=["euicc state", "usage ledger", "database URL", "operator token", "private key"],
)
def test_every_writer_of_state_or_secrets_writes_0600_atomically(
    tmp_path: Path, permissive_umask: None, name: str, write: Callable[[Path], None]
) -> None:
    path = tmp_path / name
    old = '{"old": {}}'  # also a usage ledger, which is read before it is saved
    path.write_text(old)
    path.chmod(0o644)
    write(path)
    assert path.read_text() != old and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [name]
