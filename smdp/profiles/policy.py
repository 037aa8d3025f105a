"""Travel policy documents: data caps, background-data rules and roaming steering carried in a
profile (the project's own rules; see asn1/policy.asn and examples/policies/schema.json).

A document is JSON or TOML (the same structure). :func:`parse_policy` checks it completely and
returns a :class:`Policy`; any problem raises :class:`PolicyError` naming the field, as a path
such as ``dataCaps[0].alerts[2]``, and the reason. Quantities: ``limit`` is a number of bytes or
a string with a unit, decimal (kB, MB, GB, TB = powers of 1000, as operators bill) or binary
(KiB, MiB, GiB, TiB); networks are written ``"MCC-MNC"`` (``"426-02"``), which keeps 2- and
3-digit MNCs apart.

Both the server (metadata, SIM files) and the device side (readback, enforcement) import this
module; the ASN.1 form is in :mod:`smdp.profiles.policy_codec`.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ACCESS_TECHNOLOGIES",
    "APP_CATEGORIES",
    "PERIODS",
    "BackgroundRules",
    "CapScope",
    "CountrySteering",
    "DataCap",
    "Network",
    "Policy",
    "PolicyError",
    "PreferredNetwork",
    "load_policy",
    "parse_policy",
]

POLICY_VERSION = 1
PERIODS = ("day", "week", "month", "validity")
ACTIONS = ("suspend", "throttle", "notify")
SCOPES = ("any", "home", "roaming")
ACCESS_TECHNOLOGIES = ("utran", "eutran", "ngran", "gsm")
PPRS = ("ppr1", "ppr2")
#: App categories a rule may name; a closed list, so that a typo is an error and not a dead rule.
APP_CATEGORIES = (
    "video", "music-streaming", "cloud-backup", "photo-sync", "os-updates", "app-updates",
    "social-media", "messaging-media", "maps", "gaming", "email", "web",
)  # fmt: skip

_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}  # fmt: skip
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")
_PLMN = re.compile(r"^(\d{3})-(\d{2,3})$")
_MCC = re.compile(r"^\d{3}$")
_MAX_LIMIT = 2**63 - 1


class PolicyError(ValueError):
    """A policy document that is not valid: ``path`` names the field, ``reason`` says what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True, order=True)
class Network:
    """A PLMN: MCC and MNC digits."""

    mcc: str
    mnc: str

    @property
    def plmn(self) -> str:
        """``"426-02"``, the document form."""
        return f"{self.mcc}-{self.mnc}"

    @property
    def mccmnc(self) -> str:
        """``"42602"``, the digits as devices print them."""
        return self.mcc + self.mnc

    @classmethod
    def parse(cls, text: str, path: str = "", *, digits: bool = False) -> Network:
        """``"426-02"``; with ``digits`` also ``"42602"``/``"426002"`` (5 digits: 2-digit MNC,
        6 digits: 3-digit MNC), the form devices print and the CLI accepts."""
        if isinstance(text, str):
            match = _PLMN.match(text)
            if match:
                return cls(match[1], match[2])
            if digits and text.isascii() and text.isdigit() and len(text) in (5, 6):
                return cls(text[:3], text[3:])
        raise PolicyError(path, f"{text!r} is not a network; write MCC-MNC, e.g. \"426-02\"")


@dataclass(frozen=True)
class PreferredNetwork:
    network: Network
    access: tuple[str, ...]


@dataclass(frozen=True)
class CountrySteering:
    """Per visited country: networks in priority order, networks never to use, data allowed or not."""

    mcc: str
    data_roaming: bool
    preferred: tuple[PreferredNetwork, ...]
    forbidden: tuple[Network, ...]


@dataclass(frozen=True)
class CapScope:
    """Where usage counts: ``any``, ``home``, ``roaming`` or ``countries`` (visited MCCs)."""

    kind: str
    countries: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataCap:
    name: str
    limit_bytes: int
    period: str
    scope: CapScope
    alerts: tuple[int, ...]
    action: str
    throttle_kbps: int | None = None


@dataclass(frozen=True)
class BackgroundRules:
    wifi_only: tuple[str, ...]
    allow_while_roaming: bool


@dataclass(frozen=True)
class Policy:
    name: str
    caps: tuple[DataCap, ...]
    background: BackgroundRules
    steering: tuple[CountrySteering, ...]
    validity_days: int | None = None
    profile_policy_rules: tuple[str, ...] = ()
    version: int = POLICY_VERSION

    def country(self, mcc: str) -> CountrySteering | None:
        return next((c for c in self.steering if c.mcc == mcc), None)

    @property
    def preferred_networks(self) -> list[PreferredNetwork]:
        """Every country's preferred networks, country by country in document order: the order
        they take in EF.OPLMNwACT (the device only compares entries of the country it is in)."""
        return [p for country in self.steering for p in country.preferred]

    @property
    def forbidden_networks(self) -> list[Network]:
        """Every forbidden network once, in document order: the content of EF.FPLMN."""
        seen: list[Network] = []
        for country in self.steering:
            seen.extend(n for n in country.forbidden if n not in seen)
        return seen

    def to_json(self) -> dict[str, Any]:
        """The canonical document (limits in bytes); parse_policy(p.to_json()) == p."""
        doc: dict[str, Any] = {"version": self.version, "name": self.name}
        if self.validity_days is not None:
            doc["validityDays"] = self.validity_days
        doc["dataCaps"] = [_cap_json(cap) for cap in self.caps]
        doc["backgroundData"] = {
            "wifiOnly": list(self.background.wifi_only),
            "allowWhileRoaming": self.background.allow_while_roaming,
        }
        doc["steering"] = [
            {
                "mcc": c.mcc,
                "dataRoaming": c.data_roaming,
                "preferred": [{"plmn": p.network.plmn, "access": list(p.access)} for p in c.preferred],
                "forbidden": [n.plmn for n in c.forbidden],
            }
            for c in self.steering
        ]
        if self.profile_policy_rules:
            doc["profilePolicyRules"] = list(self.profile_policy_rules)
        return doc


def _cap_json(cap: DataCap) -> dict[str, Any]:
    scope: Any = cap.scope.kind if cap.scope.kind != "countries" else {"countries": list(cap.scope.countries)}
    doc = {"name": cap.name, "limit": cap.limit_bytes, "period": cap.period, "scope": scope,
           "alerts": list(cap.alerts), "action": cap.action}  # fmt: skip
    if cap.throttle_kbps is not None:
        doc["throttleKbps"] = cap.throttle_kbps
    return doc


# --- parsing ------------------------------------------------------------------------------------


def load_policy(path: Path) -> Policy:
    """Read and check a policy file (``.toml`` is TOML, anything else JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError("", f"cannot read {path}: {exc}") from None
    try:
        doc = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError("", f"{path} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    return parse_policy(doc)


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)


def _fields(doc: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise PolicyError(path, f"must be an object, got {type(doc).__name__}")
    for key in doc:
        if key not in required and key not in optional:
            raise PolicyError(_join(path, key), f"unknown field (known: {', '.join(required + optional)})")
    for key in required:
        if key not in doc:
            raise PolicyError(_join(path, key), "is required")
    return doc


def _list(value: Any, path: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError(path, f"must be a list, got {type(value).__name__}")
    if len(value) > max_items:
        raise PolicyError(path, f"has {len(value)} items, at most {max_items} are allowed")
    return value


def _str(value: Any, path: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise PolicyError(path, f"must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise PolicyError(path, f"is {len(value)} characters long, at most {max_len} are allowed")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(path, f"must be true or false, got {value!r}")
    return value


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(path, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise PolicyError(path, f"{value} is outside {low}..{high}")
    return value


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise PolicyError(path, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _mcc(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _MCC.match(value):
        raise PolicyError(path, f"{value!r} is not a mobile country code (3 digits)")
    return value


def parse_quantity(value: Any, path: str = "limit") -> int:
    """Bytes from an integer or a string such as ``"5GB"``, ``"700MB"``, ``"1.5GiB"``."""
    if isinstance(value, bool):
        raise PolicyError(path, f"must be a number of bytes or a string like \"5GB\", got {value!r}")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and (match := _QUANTITY.match(value)) and match[2] in _UNITS:
        amount = int(float(match[1]) * _UNITS[match[2]])
    else:
        raise PolicyError(path, f"{value!r} is not a quantity like \"5GB\" (units: {', '.join(_UNITS)})")
    if not 1 <= amount <= _MAX_LIMIT:
        raise PolicyError(path, f"{value!r} must be at least 1 byte")
    return amount


def parse_policy(doc: Any) -> Policy:
    """Check a decoded JSON/TOML policy document and build the :class:`Policy` it describes."""
    doc = _fields(doc, "", ("version", "name"),
                  ("$schema", "description", "validityDays", "dataCaps", "backgroundData", "steering",
                   "profilePolicyRules"))  # fmt: skip
    version = _int(doc["version"], "version", 1, 255)
    if version != POLICY_VERSION:
        raise PolicyError("version", f"{version} is not a policy version this implementation knows ({POLICY_VERSION})")
    if "description" in doc:
        _str(doc["description"], "description", 1000)
    validity = _int(doc["validityDays"], "validityDays", 1, 3650) if "validityDays" in doc else None
    caps = tuple(_parse_cap(c, f"dataCaps[{i}]") for i, c in enumerate(_list(doc.get("dataCaps", []), "dataCaps", 16)))
    background = _parse_background(doc.get("backgroundData", {}), "backgroundData")
    steering = tuple(
        _parse_country(c, f"steering[{i}]") for i, c in enumerate(_list(doc.get("steering", []), "steering", 64))
    )
    seen: dict[str, int] = {}
    for index, country in enumerate(steering):
        if country.mcc in seen:
            raise PolicyError(f"steering[{index}].mcc", f"country {country.mcc} is already steered by steering[{seen[country.mcc]}]")
        seen[country.mcc] = index
    pprs = tuple(
        _choice(p, f"profilePolicyRules[{i}]", PPRS)
        for i, p in enumerate(_list(doc.get("profilePolicyRules", []), "profilePolicyRules", 2))
    )
    if len(set(pprs)) != len(pprs):
        raise PolicyError("profilePolicyRules", "lists a rule twice")
    return Policy(
        name=_str(doc["name"], "name", 64),
        caps=caps,
        background=background,
        steering=steering,
        validity_days=validity,
        profile_policy_rules=tuple(sorted(pprs)),
        version=version,
    )


def _parse_cap(doc: Any, path: str) -> DataCap:
    doc = _fields(doc, path, ("limit", "period", "scope", "action"), ("name", "alerts", "throttleKbps"))
    scope_doc = doc["scope"]
    if isinstance(scope_doc, dict):
        scope_doc = _fields(scope_doc, f"{path}.scope", ("countries",), ())
        countries = _list(scope_doc["countries"], f"{path}.scope.countries", 64)
        if not countries:
            raise PolicyError(f"{path}.scope.countries", "must name at least one country")
        scope = CapScope("countries", tuple(_mcc(c, f"{path}.scope.countries[{i}]") for i, c in enumerate(countries)))
    else:
        scope = CapScope(_choice(scope_doc, f"{path}.scope", (*SCOPES, '{"countries": [...]}')))
    alerts = tuple(
        _int(a, f"{path}.alerts[{i}]", 1, 100) for i, a in enumerate(_list(doc.get("alerts", []), f"{path}.alerts", 10))
    )
    if list(alerts) != sorted(set(alerts)):
        raise PolicyError(f"{path}.alerts", f"{list(alerts)} must be ascending percentages without repeats")
    action = _choice(doc["action"], f"{path}.action", ACTIONS)
    throttle = None
    if action == "throttle":
        if "throttleKbps" not in doc:
            raise PolicyError(f"{path}.throttleKbps", "is required when the action is throttle")
        throttle = _int(doc["throttleKbps"], f"{path}.throttleKbps", 1, 10_000_000)
    elif "throttleKbps" in doc:
        raise PolicyError(f"{path}.throttleKbps", f"only applies to the throttle action, not {action}")
    return DataCap(
        name=_str(doc.get("name", ""), f"{path}.name", 32),
        limit_bytes=parse_quantity(doc["limit"], f"{path}.limit"),
        period=_choice(doc["period"], f"{path}.period", PERIODS),
        scope=scope,
        alerts=alerts,
        action=action,
        throttle_kbps=throttle,
    )


def _parse_background(doc: Any, path: str) -> BackgroundRules:
    doc = _fields(doc, path, (), ("wifiOnly", "allowWhileRoaming"))
    wifi_only = tuple(
        _choice(c, f"{path}.wifiOnly[{i}]", APP_CATEGORIES)
        for i, c in enumerate(_list(doc.get("wifiOnly", []), f"{path}.wifiOnly", 32))
    )
    if len(set(wifi_only)) != len(wifi_only):
        raise PolicyError(f"{path}.wifiOnly", "lists a category twice")
    return BackgroundRules(wifi_only, _bool(doc.get("allowWhileRoaming", True), f"{path}.allowWhileRoaming"))


def _parse_country(doc: Any, path: str) -> CountrySteering:
    doc = _fields(doc, path, ("mcc",), ("dataRoaming", "preferred", "forbidden"))
    mcc = _mcc(doc["mcc"], f"{path}.mcc")
    preferred: list[PreferredNetwork] = []
    for i, entry in enumerate(_list(doc.get("preferred", []), f"{path}.preferred", 32)):
        where = f"{path}.preferred[{i}]"
        entry = _fields(entry, where, ("plmn",), ("access",))
        network = _in_country(Network.parse(entry["plmn"], f"{where}.plmn"), mcc, f"{where}.plmn")
        access = tuple(
            _choice(a, f"{where}.access[{j}]", ACCESS_TECHNOLOGIES)
            for j, a in enumerate(_list(entry.get("access", list(ACCESS_TECHNOLOGIES)), f"{where}.access", 4))
        )
        if not access:
            raise PolicyError(f"{where}.access", "must name at least one access technology")
        if len(set(access)) != len(access):
            raise PolicyError(f"{where}.access", "lists an access technology twice")
        # A set of technologies (one bit each in EF.OPLMNwACT): kept in one canonical order.
        access = tuple(a for a in ACCESS_TECHNOLOGIES if a in access)
        if any(p.network == network for p in preferred):
            raise PolicyError(f"{where}.plmn", f"{network.plmn} is listed twice")
        preferred.append(PreferredNetwork(network, access))
    forbidden: list[Network] = []
    for i, text in enumerate(_list(doc.get("forbidden", []), f"{path}.forbidden", 32)):
        network = _in_country(Network.parse(text, f"{path}.forbidden[{i}]"), mcc, f"{path}.forbidden[{i}]")
        if any(p.network == network for p in preferred):
            raise PolicyError(f"{path}.forbidden[{i}]", f"{network.plmn} is also a preferred network")
        if network in forbidden:
            raise PolicyError(f"{path}.forbidden[{i}]", f"{network.plmn} is listed twice")
        forbidden.append(network)
    return CountrySteering(mcc, _bool(doc.get("dataRoaming", True), f"{path}.dataRoaming"), tuple(preferred), tuple(forbidden))


def _in_country(network: Network, mcc: str, path: str) -> Network:
    if network.mcc != mcc:
        raise PolicyError(path, f"{network.plmn} is not a network of country {mcc}")
    return network
