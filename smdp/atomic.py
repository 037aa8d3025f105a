"""Atomic file writes: the one "temporary file, fsync, rename" of the project.

A file that holds state or a secret (the virtual eUICC's state, a usage ledger, an API token, a
database URL with a password, a private key, a key CSV) must never be seen half-written, and a
secret must never be readable by others, not even for a moment. :func:`write_atomic` creates a
temporary file next to the target with ``O_EXCL`` (nobody else's file, no symlink followed) and the
final mode from the first byte, writes and fsyncs it, then renames it over the target (or, with
``overwrite=False``, links it into place, which fails if the name exists). On any failure the
temporary file is removed and the old file, if any, is untouched.

This module imports nothing from the rest of smdp, so every layer may use it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes | str,
    mode: int = 0o600,
    *,
    overwrite: bool = True,
    encoding: str = "utf-8",
) -> None:
    """Write ``data`` (bytes, or text encoded with ``encoding``, newlines as given) to ``path``
    atomically, the file having exactly ``mode`` whatever the umask.

    ``overwrite=False`` refuses to replace an existing file: FileExistsError, and the existing file
    is left as it was (also when the name appears while this call is writing). The directory must
    exist; callers choose its mode."""
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it: make it exactly ``mode``
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # unlike rename, fails if ``path`` exists
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable (best effort: not every platform opens directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
