"""Typed profile metadata: the JSON kept in ``Profile.profile_metadata`` / ``ProfileType.profile_metadata``,
checked completely where it enters (profile import, profile-type creation) and again where it is used.

JSON form (every field optional)::

    {"serviceProviderName": "...", "profileName": "...", "profileClass": "test|provisioning|operational",
     "iconType": "jpg|png", "icon": "<base64>", "profilePolicyRules": ["pprUpdateControl", "ppr1", "ppr2"],
     "notificationConfigurationInfo": [{"events": ["install", "enable", "disable", "delete"], "address": "host"}],
     "policy": {<travel policy document, see smdp.profiles.policy>}}

:meth:`ProfileMetadata.from_json` raises :class:`MetadataError` naming the field and the problem, e.g.
``metadata: profileClass must be one of test, provisioning, operational, not 'prod'`` or
``metadata: unknown field 'serviceProvidername' (did you mean 'serviceProviderName'?)``; a problem inside the
policy is the policy loader's own message under ``policy.`` (``metadata: policy.dataCaps[0].limit: ...``).

The DER form (SGP.22 section 5.5.3 StoreMetadataRequest) is built from the model in :mod:`smdp.rsp.metadata`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Any

from smdp.codec import b64
from smdp.profiles.policy import Policy, PolicyError, parse_policy

__all__ = [
    "EVENT_BITS",
    "ICON_TYPES",
    "PPR_BITS",
    "PROFILE_CLASSES",
    "MetadataError",
    "NotificationConfiguration",
    "ProfileMetadata",
]

PROFILE_CLASSES = ("test", "provisioning", "operational")  # ProfileClass ::= INTEGER {test(0), provisioning(1), operational(2)}
ICON_TYPES = ("jpg", "png")  # IconType ::= INTEGER {jpg(0), png(1)}
PPR_BITS = ("pprUpdateControl", "ppr1", "ppr2")  # PprIds ::= BIT STRING (SGP.22 2.4.x)
EVENT_BITS = ("install", "enable", "disable", "delete")  # NotificationEvent ::= BIT STRING

FIELDS = ("serviceProviderName", "profileName", "profileClass", "iconType", "icon", "profilePolicyRules",
          "notificationConfigurationInfo", "policy")  # fmt: skip
NOTIFICATION_FIELDS = ("events", "address")
# StoreMetadataRequest size constraints (SGP.22 5.5.3): the eUICC refuses more.
MAX_SERVICE_PROVIDER_NAME = 32
MAX_PROFILE_NAME = 64
MAX_ICON = 1024
MAX_ADDRESS = 255


class MetadataError(ValueError):
    """Metadata that is not valid: ``field`` names it (a path such as ``notificationConfigurationInfo[0].events``),
    the message (``metadata: ...``) says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"metadata: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class NotificationConfiguration:
    """One NotificationConfigurationInformation: which operations notify, and where."""

    events: tuple[str, ...]
    address: str

    def to_json(self) -> dict[str, Any]:
        return {"events": list(self.events), "address": self.address}


@dataclass(frozen=True)
class ProfileMetadata:
    """What the SM-DP+ says about a Profile in its StoreMetadataRequest.

    ``notifications`` is None when the metadata names none: each download session then asks for
    enable/disable/delete notifications to its own SM-DP+ address. An empty tuple asks for none.
    """

    service_provider_name: str = ""
    profile_name: str = ""
    profile_class: str | None = None
    icon_type: str | None = None
    icon: bytes | None = None
    profile_policy_rules: tuple[str, ...] = ()
    notifications: tuple[NotificationConfiguration, ...] | None = None
    policy: Policy | None = None

    @classmethod
    def from_json(cls, doc: Any) -> ProfileMetadata:
        """Check a decoded JSON metadata document completely (MetadataError naming the field)."""
        if isinstance(doc, ProfileMetadata):
            return doc
        if not isinstance(doc, dict):
            raise MetadataError("", f"must be a JSON object, not {_kind(doc)}")
        _known(doc, "", FIELDS)
        icon_type = _choice(doc["iconType"], "iconType", ICON_TYPES) if "iconType" in doc else None
        icon = _icon(doc["icon"]) if "icon" in doc else None
        if (icon_type is None) != (icon is None):
            missing, given = ("icon", "iconType") if icon is None else ("iconType", "icon")
            raise MetadataError(missing, f"{missing} is required with {given}")
        policy = None
        if doc.get("policy") is not None:
            try:
                policy = parse_policy(doc["policy"])
            except PolicyError as exc:
                path = f"policy.{exc.path}" if exc.path else "policy"
                raise MetadataError(path, f"{path}: {exc.reason}") from None
        notifications = None  # absent: each session asks for its own default; present (even null): as given
        if "notificationConfigurationInfo" in doc:
            given = doc["notificationConfigurationInfo"]
            notifications = tuple(
                _notification(n, f"notificationConfigurationInfo[{i}]")
                for i, n in enumerate(_list([] if given is None else given, "notificationConfigurationInfo"))
            )
        return cls(
            service_provider_name=_str(doc.get("serviceProviderName", ""), "serviceProviderName", MAX_SERVICE_PROVIDER_NAME),
            profile_name=_str(doc.get("profileName", ""), "profileName", MAX_PROFILE_NAME),
            profile_class=_choice(doc["profileClass"], "profileClass", PROFILE_CLASSES) if "profileClass" in doc else None,
            icon_type=icon_type,
            icon=icon,
            profile_policy_rules=_names(doc.get("profilePolicyRules", []), "profilePolicyRules", PPR_BITS),
            notifications=notifications,
            policy=policy,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form; ``ProfileMetadata.from_json(m.to_json()) == m``."""
        doc: dict[str, Any] = {"serviceProviderName": self.service_provider_name, "profileName": self.profile_name}
        if self.profile_class is not None:
            doc["profileClass"] = self.profile_class
        if self.icon_type is not None and self.icon is not None:
            doc["iconType"] = self.icon_type
            doc["icon"] = b64.b64encode(self.icon)
        if self.profile_policy_rules:
            doc["profilePolicyRules"] = list(self.profile_policy_rules)
        if self.notifications is not None:
            doc["notificationConfigurationInfo"] = [n.to_json() for n in self.notifications]
        if self.policy is not None:
            doc["policy"] = self.policy.to_json()
        return doc

    @property
    def pprs(self) -> list[str]:
        """The Profile's PPRs: the metadata's own plus those its policy document asks for."""
        from_policy = self.policy.profile_policy_rules if self.policy is not None else ()
        return sorted(set(self.profile_policy_rules) | set(from_policy))

    def with_default_notifications(self, address: str) -> ProfileMetadata:
        """These metadata, asking for enable/disable/delete notifications to ``address`` unless they name their own."""
        if self.notifications is not None:
            return self
        return replace(self, notifications=(NotificationConfiguration(("enable", "disable", "delete"), address),))


# --- checks ---------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _known(doc: dict[str, Any], path: str, known: tuple[str, ...]) -> None:
    for key in doc:
        if key in known:
            continue
        where = _join(path, str(key))
        close = difflib.get_close_matches(str(key), known, n=1)
        if not close:  # a wrong case is always a near miss, even for short names
            close = [k for k in known if k.lower() == str(key).lower()][:1]
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        raise MetadataError(where, f"unknown field {where!r} ({hint})")


def _str(value: Any, path: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise MetadataError(path, f"{path} must be a string, not {_kind(value)}")
    if len(value) > max_len:
        raise MetadataError(path, f"{path} is {len(value)} characters long, at most {max_len} are allowed")
    return value


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise MetadataError(path, f"{path} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise MetadataError(path, f"{path} must be a list, not {_kind(value)}")
    return value


def _names(value: Any, path: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(_choice(v, f"{path}[{i}]", allowed) for i, v in enumerate(_list(value, path)))
    for name in names:
        if names.count(name) > 1:
            raise MetadataError(path, f"{path} lists {name!r} twice")
    return names


def _icon(value: Any) -> bytes:
    if not isinstance(value, str):
        raise MetadataError("icon", f"icon must be a base64 string, not {_kind(value)}")
    try:
        icon = b64.b64decode(value)
    except ValueError as exc:
        raise MetadataError("icon", f"icon is not base64: {exc}") from None
    if len(icon) > MAX_ICON:
        raise MetadataError("icon", f"icon is {len(icon)} bytes, at most {MAX_ICON} are allowed")
    return icon


def _notification(doc: Any, path: str) -> NotificationConfiguration:
    if not isinstance(doc, dict):
        raise MetadataError(path, f"{path} must be an object with events and address, not {_kind(doc)}")
    _known(doc, path, NOTIFICATION_FIELDS)
    for key in NOTIFICATION_FIELDS:
        if key not in doc:
            raise MetadataError(_join(path, key), f"{_join(path, key)} is required")
    events = _names(doc["events"], f"{path}.events", EVENT_BITS)
    if not events:
        raise MetadataError(f"{path}.events", f"{path}.events must name at least one of {', '.join(EVENT_BITS)}")
    address = _str(doc["address"], f"{path}.address", MAX_ADDRESS)
    if not address:
        raise MetadataError(f"{path}.address", f"{path}.address must not be empty")
    return NotificationConfiguration(events, address)
