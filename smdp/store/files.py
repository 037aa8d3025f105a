"""File permissions of the data directory: only its owner may read what smdp keeps there.

The data directory holds the master key, the PKI's private keys, operator tokens, the eUICC state and
(by default) the SQLite database with its ``-wal`` and ``-shm`` files.  :func:`secure_data_dir` runs at
the start of every command that writes there (``smdp serve`` via :func:`smdp.server.open_runtime`, the
CLI's database commands via ``smdp.cli.open_database``):

- the process umask becomes 0o077, so every file created from then on (SQLite creates its ``-wal`` and
  ``-shm`` files itself) is 0600 and every directory 0700;
- the data directory is created 0700;
- whatever an earlier build or another tool left readable by group or others under it (and the SQLite
  database files, when ``--database-url`` puts them elsewhere) is made 0600 (files) or 0700
  (directories), with one warning naming what was changed.

Symbolic links are neither followed nor changed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from smdp.config import Settings

__all__ = ["DIR_MODE", "FILE_MODE", "UMASK", "restrict_umask", "secure_data_dir", "sqlite_files", "tighten"]

log = logging.getLogger(__name__)

UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def restrict_umask() -> None:
    """From now on this process creates files 0600 and directories 0700 (unless a mode is forced)."""
    os.umask(UMASK)


def sqlite_files(database_url: str) -> list[Path]:
    """The files of a SQLite database URL (the database, ``-wal``, ``-shm``, ``-journal``); [] otherwise."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return []
    base = Path(url.database).expanduser()
    return [base.with_name(base.name + suffix) for suffix in _SQLITE_SUFFIXES]


def _fix(path: Path, wanted: int) -> str | None:
    """chmod ``path`` to ``wanted`` if group or others have any access; a description of the change, or None."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return None
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return None
    os.chmod(path, wanted)
    return f"{path} {mode:04o}->{wanted:04o}"


def tighten(directory: Path) -> list[str]:
    """Make ``directory`` and everything under it 0700 (directories) / 0600 (files) where group or others
    had access; returns what was changed (``path old->new``)."""
    changed: list[str] = []
    if (fixed := _fix(directory, DIR_MODE)) is not None:
        changed.append(fixed)
    for root, dirs, files in os.walk(directory):  # does not descend into symlinked directories
        for name in dirs:
            if (fixed := _fix(Path(root, name), DIR_MODE)) is not None:
                changed.append(fixed)
        for name in files:
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():  # no sockets, FIFOs or devices
                continue
            if (fixed := _fix(path, FILE_MODE)) is not None:
                changed.append(fixed)
    return changed


def secure_data_dir(settings: Settings) -> list[str]:
    """Restrictive umask, the data directory 0700, and existing files fixed (see the module docstring).

    Returns what was changed; a non-empty list is also logged as one warning."""
    restrict_umask()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    changed = tighten(settings.data_dir)
    for path in sqlite_files(settings.database_url):  # when --database-url puts them outside the data directory
        if (fixed := _fix(path, FILE_MODE)) is not None:
            changed.append(fixed)
    if changed:
        log.warning(
            "made %d path(s) private (readable by group or others before; files 0600, directories 0700): %s",
            len(changed),
            ", ".join(changed),
        )
    return changed
