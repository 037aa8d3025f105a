"""Persistent state of the virtual eUICC: what a real eUICC keeps in non-volatile memory (SGP.22 2.4).

One JSON file holds the installed Profiles (ISD-P AID, state, metadata and the Profile Element DER
exactly as loaded), the pending Notifications (section 3.5, kept signed as they will be sent), the
Notification sequence counter, the default SM-DP+ address (ES10a) and a few settings. The eUICC's
certificates and private key stay in the PKI manifest the state points to. One-time ECKA keys and
session keys are never written here: they live in memory for one RSP session only.

Writes are atomic (a temporary file in the same directory, fsync, rename), so a crash leaves the
old or the new state, never half of one. The file is created with mode 0600.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smdp.atomic import write_atomic
from smdp.codec.b64 import b64decode, b64encode

__all__ = [
    "STATE_VERSION",
    "EuiccState",
    "InstalledProfile",
    "StateError",
    "StoredNotification",
    "load_state",
    "save_state",
]

STATE_VERSION = 1

#: The GSMA root SM-DS (SGP.22 section 4.2.x, EuiccConfiguredAddresses.rootDsAddress).
DEFAULT_ROOT_DS = "lpa.ds.gsma.com"


class StateError(ValueError):
    """The state file is missing a field, has a wrong type, or is not valid JSON."""


@dataclass
class InstalledProfile:
    """One Profile in its ISD-P. ``elements`` are the Profile Elements' DER, byte for byte as loaded."""

    iccid: str
    isdp_aid: bytes
    enabled: bool
    metadata: bytes  # StoreMetadataRequest ('BF25') DER as received in the BPP
    elements: list[bytes]
    nickname: str | None = None

    @property
    def state(self) -> str:
        """"enabled" or "disabled" (SGP.22 ProfileState)."""
        return "enabled" if self.enabled else "disabled"

    @property
    def package(self) -> bytes:
        """The unprotected profile package (the PEs concatenated)."""
        return b"".join(self.elements)


@dataclass
class StoredNotification:
    """A pending Notification: its metadata, and the signed PendingNotification DER ('BF37' or '30')."""

    seq_number: int
    event: str  # install, enable, disable or delete
    address: str
    iccid: str | None
    der: bytes


@dataclass
class EuiccState:
    eid: str
    curve: str
    manifest: str  # absolute path of the PKI manifest holding the eUICC's credentials
    next_seq_number: int = 1
    next_isdp_index: int = 0
    default_dp_address: str | None = None
    root_ds_address: str = DEFAULT_ROOT_DS
    forbidden_pprs: list[str] = field(default_factory=list)
    profiles: list[InstalledProfile] = field(default_factory=list)
    notifications: list[StoredNotification] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "eid": self.eid,
            "curve": self.curve,
            "manifest": self.manifest,
            "next_seq_number": self.next_seq_number,
            "next_isdp_index": self.next_isdp_index,
            "default_dp_address": self.default_dp_address,
            "root_ds_address": self.root_ds_address,
            "forbidden_pprs": list(self.forbidden_pprs),
            "profiles": [
                {
                    "iccid": p.iccid,
                    "isdp_aid": p.isdp_aid.hex().upper(),
                    "state": p.state,
                    "nickname": p.nickname,
                    "metadata": b64encode(p.metadata),
                    "elements": [b64encode(e) for e in p.elements],
                }
                for p in self.profiles
            ],
            "notifications": [
                {
                    "seq_number": n.seq_number,
                    "event": n.event,
                    "address": n.address,
                    "iccid": n.iccid,
                    "der": b64encode(n.der),
                }
                for n in self.notifications
            ],
        }

    @classmethod
    def from_json(cls, doc: Any) -> EuiccState:
        try:
            if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
                raise StateError(f"not a version {STATE_VERSION} virtual eUICC state")
            return cls(
                eid=_str(doc["eid"]),
                curve=_str(doc["curve"]),
                manifest=_str(doc["manifest"]),
                next_seq_number=int(doc["next_seq_number"]),
                next_isdp_index=int(doc["next_isdp_index"]),
                default_dp_address=doc.get("default_dp_address"),
                root_ds_address=_str(doc.get("root_ds_address", DEFAULT_ROOT_DS)),
                forbidden_pprs=[_str(p) for p in doc.get("forbidden_pprs", [])],
                profiles=[
                    InstalledProfile(
                        iccid=_str(p["iccid"]),
                        isdp_aid=bytes.fromhex(_str(p["isdp_aid"])),
                        enabled=p["state"] == "enabled",
                        nickname=p.get("nickname"),
                        metadata=b64decode(p["metadata"]),
                        elements=[b64decode(e) for e in p["elements"]],
                    )
                    for p in doc["profiles"]
                ],
                notifications=[
                    StoredNotification(
                        seq_number=int(n["seq_number"]),
                        event=_str(n["event"]),
                        address=_str(n["address"]),
                        iccid=n.get("iccid"),
                        der=b64decode(n["der"]),
                    )
                    for n in doc["notifications"]
                ],
            )
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed virtual eUICC state: {exc!r}") from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def load_state(path: Path) -> EuiccState:
    """Read the state file; StateError (naming the file) if it is unreadable or malformed."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"{path}: cannot read virtual eUICC state ({exc})") from None
    try:
        return EuiccState.from_json(doc)
    except StateError as exc:
        raise StateError(f"{path}: {exc}") from None


def save_state(path: Path, state: EuiccState) -> None:
    """Write the state atomically (temporary file, fsync, rename), mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(state.to_json(), indent=1).encode("utf-8")
    write_atomic(path, data, mode=0o600)  # the profiles' secrets (Ki/OPc) are in it: owner only
