"""The operator's key file: per generated profile ICCID, IMSI, Ki, OPc, algorithm and the PIN/PUK/ADM
codes, as CSV, for the network side (HSS/UDM provisioning, e.g. ``open5gs-dbctl add IMSI KI OPC``).

Protection choice: the file is created with mode 0600 (owner only) from the first byte, with
O_EXCL in the destination directory, and only appears under its final name once complete
(rename); it never overwrites an existing file. It is not encrypted here: encryption to a
recipient key belongs to the tool that carries the file to the operator (age, gpg), and a key
the SM-DP+ would hold to decrypt it again would sit next to the file anyway. Nothing in it is
logged.

Line endings: LF, like every CSV smdp writes; ``crlf=True`` (``smdp profile generate --crlf``)
gives the CRLF that RFC 4180 prescribes, for tools that insist on it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from smdp.profiles.personalize import Personalization

__all__ = ["KeyFileError", "PrivateCsvWriter", "key_file_header", "key_file_row"]


class KeyFileError(OSError):
    """The key file cannot be created (it exists, or the directory is not writable)."""


def key_file_header(code_names: list[str]) -> list[str]:
    return ["iccid", "imsi", "ki", "opc", "algorithm", *[name.lower() for name in code_names]]


def key_file_row(values: Personalization, algorithm: str, code_names: list[str]) -> list[str]:
    return [values.iccid, values.imsi, values.ki.hex().upper(), values.opc.hex().upper(), algorithm,
            *[values.codes[name] for name in code_names]]  # fmt: skip


class PrivateCsvWriter:
    """A CSV file written owner-only and published atomically: ``commit()`` gives it its name,
    leaving the context without commit (or on an error) removes it.

    Rows are streamed to a temporary file (not collected and written at the end with
    :func:`smdp.atomic.write_atomic`) so that an unwritable directory fails before a long
    generation run starts, and memory stays flat however many profiles are generated."""

    def __init__(self, path: Path, header: list[str], *, crlf: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise KeyFileError(f"{self.path} exists; refusing to overwrite it")
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise KeyFileError(f"cannot create {self._tmp}: {exc.strerror}") from None
        self._file = open(fd, "w", newline="", encoding="ascii")  # noqa: SIM115 - open until close(), which renames it
        self._csv = csv.writer(self._file, lineterminator="\r\n" if crlf else "\n")
        self._csv.writerow(header)
        self._done = False

    def write(self, row: list[str]) -> None:
        self._csv.writerow(row)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        try:
            # link() fails if the name appeared meanwhile: never overwrite (rename would).
            os.link(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise KeyFileError(f"cannot publish {self.path}: {exc.strerror}") from None
        self._tmp.unlink()
        self._done = True

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._done:
            self.abort()
