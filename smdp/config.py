"""Where smdp keeps its state: the data directory, the database URL and the PKI manifest.

One loader for every command: ``--data-dir`` beats ``SMDP_DATA_DIR`` beats the per-user default;
``--database-url`` beats ``SMDP_DATABASE_URL`` beats the URL the data directory remembers
(``DATA_DIR/database-url``, written by ``smdp serve`` and ``smdp db upgrade`` when given one) beats a
SQLite file inside the data directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smdp.atomic import write_atomic

if TYPE_CHECKING:
    from smdp.crypto.sealed import Sealer


def default_data_dir() -> Path:
    env = os.environ.get("SMDP_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "smdp"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    pki_manifest: Path

    @property
    def certs_dir(self) -> Path:
        return self.data_dir / "certs"

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / "master.key"

    @property
    def euicc_dir(self) -> Path:
        return self.data_dir / "euicc"


def load_settings(
    data_dir: str | Path | None = None,
    database_url: str | None = None,
    pki_manifest: str | Path | None = None,
) -> Settings:
    directory = Path(data_dir).expanduser() if data_dir else default_data_dir()
    url = database_url or os.environ.get("SMDP_DATABASE_URL") or remembered_database_url(directory) or f"sqlite:///{directory / 'smdp.db'}"
    manifest_env = pki_manifest or os.environ.get("SMDP_PKI")
    manifest = Path(manifest_env).expanduser() if manifest_env else directory / "certs" / "pki.toml"
    return Settings(data_dir=directory.resolve(), database_url=url, pki_manifest=manifest.resolve())


DATABASE_URL_FILE = "database-url"


def remembered_database_url(data_dir: Path) -> str | None:
    """The database URL the data directory remembers (DATA_DIR/database-url), if any."""
    try:
        text = (Path(data_dir) / DATABASE_URL_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def remember_database_url(settings: Settings) -> None:
    """Write the settings' database URL to DATA_DIR/database-url (mode 0600: it may hold a password), so
    later commands on this data directory use it without ``--database-url``."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(settings.data_dir / DATABASE_URL_FILE, settings.database_url + "\n", mode=0o600)


def master_sealer(settings: Settings) -> Sealer:
    """The sealer of the data directory's secrets at rest (``master.key``, created 0600 on first use): profile
    packages, confirmation-code digests and one-time keys are stored sealed with it."""
    from smdp.crypto import sealed

    return sealed.Sealer(sealed.load_or_create_master_key(settings.master_key_path))
