"""Enforcement of a travel policy on the device, simulated: mobile data usage counted per cap and
period, alerts as thresholds are crossed (each once per period), and the cap's action (suspend,
throttle, notify) when it is reached; background and Wi-Fi-only rules and per-country data
roaming decide first whether mobile data may be used at all.

A period starts at the first usage recorded for the Profile: ``day`` and ``week`` are 24 h and 7 d
windows from it, ``month`` the same day of the following months, ``validity`` the whole plan
(``validityDays`` long; usage after it is refused). A suspended cap stays suspended until lifted
(``lift``) or until its next period. The ledger is one JSON file, written atomically (mode 0600).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from smdp.atomic import write_atomic
from smdp.profiles.policy import DataCap, Network, Policy

__all__ = ["UsageLedger", "UsageResult", "format_bytes"]


def format_bytes(amount: int) -> str:
    for unit, size in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if amount >= size:
            return f"{amount / size:.2f} {unit}".replace(".00 ", " ")
    return f"{amount} B"


@dataclass
class UsageResult:
    requested: int
    delivered: int
    messages: list[str] = field(default_factory=list)  # alerts and actions, in the order they happened
    alerts: list[tuple[str, int]] = field(default_factory=list)  # (cap name, percent)
    caps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return self.requested - self.delivered

    def to_json(self) -> dict[str, Any]:
        return {"requested": self.requested, "delivered": self.delivered, "refused": self.refused,
                "alerts": [{"cap": c, "percent": p} for c, p in self.alerts], "messages": self.messages,
                "caps": self.caps}  # fmt: skip


def _months_between(start: datetime, now: datetime) -> int:
    months = (now.year - start.year) * 12 + now.month - start.month
    anniversary = (now.day, now.time()) >= (start.day, start.time())
    return months if anniversary else months - 1


class UsageLedger:
    """Usage of the Profiles of one device, persisted in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._doc: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable usage ledger ({exc})") from None

    def _profile(self, iccid: str, now: datetime) -> dict[str, Any]:
        return self._doc.setdefault(iccid, {"start": now.isoformat(), "caps": {}})

    def _period(self, cap: DataCap, policy: Policy, start: datetime, now: datetime) -> int | None:
        """Index of the current period of ``cap`` (None: the plan's validity is over)."""
        elapsed = now - start
        if cap.period == "day":
            return max(0, elapsed // timedelta(days=1))
        if cap.period == "week":
            return max(0, elapsed // timedelta(days=7))
        if cap.period == "month":
            return max(0, _months_between(start, now))
        if policy.validity_days is not None and elapsed >= timedelta(days=policy.validity_days):
            return None
        return 0

    def _cap_state(self, profile: dict[str, Any], index: int, period: int) -> dict[str, Any]:
        state = profile["caps"].get(str(index))
        if state is None or state["period"] != period:
            state = {"period": period, "used": 0, "alerts": [], "state": "active", "lifted": False}
            profile["caps"][str(index)] = state
        return state

    @staticmethod
    def _applies(cap: DataCap, roaming: Network | None) -> bool:
        kind = cap.scope.kind
        if kind == "any":
            return True
        if kind == "home":
            return roaming is None
        if kind == "roaming":
            return roaming is not None
        return roaming is not None and roaming.mcc in cap.scope.countries

    def record(
        self,
        iccid: str,
        policy: Policy,
        amount: int,
        *,
        now: datetime,
        roaming: Network | None = None,
        app_category: str | None = None,
        background: bool = False,
    ) -> UsageResult:
        """Try to use ``amount`` bytes of mobile data (``roaming``: the visited network, None at home)."""
        result = UsageResult(requested=amount, delivered=0)
        profile = self._profile(iccid, now)
        start = datetime.fromisoformat(profile["start"])
        if app_category is not None and app_category in policy.background.wifi_only:
            result.messages.append(f"blocked: {app_category} may use Wi-Fi only")
            return self._done(iccid, policy, result, now)
        if roaming is not None and background and not policy.background.allow_while_roaming:
            result.messages.append("blocked: background data is off while roaming")
            return self._done(iccid, policy, result, now)
        country = policy.country(roaming.mcc) if roaming is not None else None
        if country is not None and not country.data_roaming:
            result.messages.append(f"blocked: data roaming is not allowed in country {roaming.mcc}")  # type: ignore[union-attr]
            return self._done(iccid, policy, result, now)
        if country is not None and any(n == roaming for n in country.forbidden):
            result.messages.append(f"blocked: {roaming.plmn} is a forbidden network")  # type: ignore[union-attr]
            return self._done(iccid, policy, result, now)
        applicable = []
        for index, cap in enumerate(policy.caps):
            if not self._applies(cap, roaming):
                continue
            period = self._period(cap, policy, start, now)
            if period is None:
                result.messages.append(f"blocked: the plan's {policy.validity_days}-day validity is over ({cap.name})")
                return self._done(iccid, policy, result, now)
            applicable.append((cap, self._cap_state(profile, index, period)))
        allowed = amount
        for cap, state in applicable:
            if state["state"] == "suspended":
                result.messages.append(f"blocked: mobile data is suspended by cap '{cap.name}' until lifted or a new period")
                return self._done(iccid, policy, result, now)
            if cap.action == "suspend" and not state["lifted"]:
                allowed = min(allowed, max(0, cap.limit_bytes - state["used"]))
        result.delivered = allowed
        for cap, state in applicable:
            before, state["used"] = state["used"], state["used"] + allowed
            for percent in cap.alerts:
                threshold = cap.limit_bytes * percent / 100
                if before < threshold <= state["used"] and percent not in state["alerts"]:
                    state["alerts"].append(percent)
                    result.alerts.append((cap.name, percent))
                    result.messages.append(f"alert: {percent}% of cap '{cap.name}' used "
                                           f"({format_bytes(state['used'])} of {format_bytes(cap.limit_bytes)})")  # fmt: skip
            if state["used"] >= cap.limit_bytes and state["state"] == "active" and not state["lifted"]:
                if cap.action == "suspend":
                    state["state"] = "suspended"
                    result.messages.append(f"suspended: cap '{cap.name}' reached; mobile data is off until lifted or a new period")
                elif cap.action == "throttle":
                    state["state"] = "throttled"
                    result.messages.append(f"throttled: cap '{cap.name}' reached; data limited to {cap.throttle_kbps} kbit/s")
        if result.refused:
            result.messages.append(f"refused {format_bytes(result.refused)} beyond the cap")
        return self._done(iccid, policy, result, now)

    def lift(self, iccid: str, policy: Policy, *, now: datetime) -> list[str]:
        """The user lifts every suspension or throttle of the current periods (until the next one)."""
        profile = self._profile(iccid, now)
        lifted = []
        for key, state in profile["caps"].items():
            if state["state"] != "active":
                state["state"], state["lifted"] = "active", True
                cap = policy.caps[int(key)]
                verb = "suspends" if cap.action == "suspend" else "throttles"
                lifted.append(f"lifted: cap '{cap.name}' no longer {verb} data this period")
        self.save()
        return lifted or ["nothing to lift"]

    def status(self, iccid: str, policy: Policy, now: datetime) -> list[dict[str, Any]]:
        profile = self._doc.get(iccid)
        rows = []
        for index, cap in enumerate(policy.caps):
            state: dict[str, Any] = {"used": 0, "state": "active", "alerts": []}
            if profile is not None:
                period = self._period(cap, policy, datetime.fromisoformat(profile["start"]), now)
                saved = profile["caps"].get(str(index))
                if period is None:
                    state = {**(saved or state), "state": "expired"}
                elif saved is not None and saved["period"] == period:
                    state = saved
            rows.append({"cap": cap.name, "scope": cap.scope.kind if cap.scope.kind != "countries" else list(cap.scope.countries),
                         "period": cap.period, "limit": cap.limit_bytes, "used": state["used"],
                         "percent": round(100 * state["used"] / cap.limit_bytes, 1), "state": state["state"],
                         "alertsSent": list(state["alerts"])})  # fmt: skip
        return rows

    def _done(self, iccid: str, policy: Policy, result: UsageResult, now: datetime) -> UsageResult:
        result.caps = self.status(iccid, policy, now)
        self.save()
        return result

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self._doc, indent=1), mode=0o600)
