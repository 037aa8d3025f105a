"""The operator key file and activation-code CSV (smdp.profiles.keyfile): LF line endings unless
asked for RFC 4180's CRLF (``smdp profile generate --crlf``), owner-only, never overwritten."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest

from smdp.cli import main
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.keyfile import KeyFileError, PrivateCsvWriter


@pytest.mark.parametrize(("crlf", "ending"), [(False, b"\n"), (True, b"\r\n")])
def test_rows_end_with_lf_unless_crlf_is_asked_for(tmp_path: Path, crlf: bool, ending: bytes) -> None:
    path = tmp_path / "keys.csv"
    with PrivateCsvWriter(path, ["iccid", "ki"], crlf=crlf) as writer:
        writer.write(["8949000000000000018", "00" * 16])
        writer.commit()
    data = path.read_bytes()
    assert data == b"iccid,ki" + ending + b"8949000000000000018," + b"00" * 16 + ending
    if not crlf:
        assert b"\r" not in data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with path.open(newline="") as handle:  # either way a CSV reader reads the same rows
        assert list(csv.reader(handle))[1] == ["8949000000000000018", "00" * 16]


def test_an_existing_file_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("precious")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        PrivateCsvWriter(path, ["iccid"])
    assert path.read_text() == "precious"


def test_leaving_without_commit_publishes_nothing(tmp_path: Path) -> None:
    with PrivateCsvWriter(tmp_path / "keys.csv", ["iccid"]) as writer:
        writer.write(["8949000000000000018"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("crlf", [False, True])
def test_profile_generate_writes_lf_by_default_and_crlf_with_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], crlf: bool
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    template = tmp_path / "template.der"
    template.write_bytes(build_demo_profile("8949000000000000018", "001010000000001", bytes(16), bytes(16)))
    assert main(["profile-type", "create", "t", "--template", str(template), "--data-dir", str(data)]) == 0
    keys, codes = tmp_path / "keys.csv", tmp_path / "codes.csv"
    argv = ["profile", "generate", "--type", "t", "--count", "3", "--iccid-start", "894900000000000700",
            "--imsi-start", "001010000000700", "--key-file", str(keys), "--activation-codes", str(codes),
            "--smdp-address", "smdp.example", "--data-dir", str(data), "--json"]  # fmt: skip
    assert main(argv + (["--crlf"] if crlf else [])) == 0
    capsys.readouterr()
    for path in (keys, codes):
        lines = path.read_bytes().split(b"\n")
        assert len(lines) == 5 and lines[-1] == b""  # header, 3 rows, and the final line ending
        assert all(line.endswith(b"\r") == crlf for line in lines[:-1]), path.name
