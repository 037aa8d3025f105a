"""Device-side enforcement of a travel policy, simulated (smdp.lpa.usage): alerts, caps, scopes,
background and Wi-Fi-only rules, lifting and new periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from smdp.lpa.usage import UsageLedger
from smdp.profiles.policy import Network, Policy, load_policy, parse_policy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "policies"
ICCID = "8949000000000000018"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BAHRAIN = Network("426", "02")
MB, GB = 1000**2, 1000**3


def bahrain() -> Policy:
    return load_policy(EXAMPLES / "bahrain-week.json")


def test_each_alert_threshold_is_crossed_once_and_data_is_suspended_at_the_cap(tmp_path: Path) -> None:
    ledger, policy = UsageLedger(tmp_path / "u.json"), bahrain()
    alerts = []
    for _ in range(8):  # 8 x 700 MB = 5.6 GB asked for, against a 5 GB cap
        result = ledger.record(ICCID, policy, 700 * MB, now=T0, roaming=BAHRAIN)
        alerts += [percent for _, percent in result.alerts]
    assert alerts == [50, 80, 100]
    status = ledger.status(ICCID, policy, T0)[0]
    assert status["used"] == 5 * GB and status["state"] == "suspended"
    refused = ledger.record(ICCID, policy, 1 * MB, now=T0, roaming=BAHRAIN)
    assert refused.delivered == 0 and "suspended" in refused.messages[0]


def test_the_usage_that_reaches_the_cap_is_cut_at_the_cap(tmp_path: Path) -> None:
    ledger, policy = UsageLedger(tmp_path / "u.json"), bahrain()
    ledger.record(ICCID, policy, 4800 * MB, now=T0, roaming=BAHRAIN)
    result = ledger.record(ICCID, policy, 700 * MB, now=T0, roaming=BAHRAIN)
    assert (result.delivered, result.refused) == (200 * MB, 500 * MB)
    assert result.alerts == [("Bahrain roaming", 100)]


def test_lifting_the_suspension_lets_data_flow_without_repeating_alerts(tmp_path: Path) -> None:
    ledger, policy = UsageLedger(tmp_path / "u.json"), bahrain()
    ledger.record(ICCID, policy, 5 * GB, now=T0, roaming=BAHRAIN)
    assert ledger.lift(ICCID, policy, now=T0)[0].startswith("lifted")
    result = ledger.record(ICCID, policy, 300 * MB, now=T0, roaming=BAHRAIN)
    assert result.delivered == 300 * MB and result.alerts == []


def test_the_cap_is_persisted_between_ledger_instances(tmp_path: Path) -> None:
    policy = bahrain()
    UsageLedger(tmp_path / "u.json").record(ICCID, policy, 3 * GB, now=T0, roaming=BAHRAIN)
    result = UsageLedger(tmp_path / "u.json").record(ICCID, policy, 1 * GB, now=T0, roaming=BAHRAIN)
    assert result.alerts == [("Bahrain roaming", 80)]


def test_usage_outside_the_caps_scope_does_not_count(tmp_path: Path) -> None:
    ledger, policy = UsageLedger(tmp_path / "u.json"), bahrain()
    home = ledger.record(ICCID, policy, 6 * GB, now=T0)  # at home: the cap is for country 426 only
    elsewhere = ledger.record(ICCID, policy, 6 * GB, now=T0, roaming=Network("262", "01"))
    assert home.delivered == elsewhere.delivered == 6 * GB
    assert ledger.status(ICCID, policy, T0)[0]["used"] == 0


def test_wifi_only_categories_background_roaming_and_forbidden_networks_are_refused(tmp_path: Path) -> None:
    ledger, policy = UsageLedger(tmp_path / "u.json"), bahrain()
    video = ledger.record(ICCID, policy, 100 * MB, now=T0, roaming=BAHRAIN, app_category="video")
    background = ledger.record(ICCID, policy, 100 * MB, now=T0, roaming=BAHRAIN, background=True)
    forbidden = ledger.record(ICCID, policy, 100 * MB, now=T0, roaming=Network("426", "01"))
    maps = ledger.record(ICCID, policy, 100 * MB, now=T0, roaming=BAHRAIN, app_category="maps")
    assert [r.delivered for r in (video, background, forbidden, maps)] == [0, 0, 0, 100 * MB]
    assert "Wi-Fi only" in video.messages[0] and "background" in background.messages[0]
    assert "forbidden" in forbidden.messages[0]


def test_usage_after_the_plan_validity_is_refused(tmp_path: Path) -> None:
    ledger, policy = UsageLedger(tmp_path / "u.json"), bahrain()
    ledger.record(ICCID, policy, 1 * MB, now=T0, roaming=BAHRAIN)
    late = ledger.record(ICCID, policy, 1 * MB, now=T0 + timedelta(days=7), roaming=BAHRAIN)
    assert late.delivered == 0 and "validity is over" in late.messages[0]


def test_a_new_period_resets_a_daily_cap_and_its_alerts(tmp_path: Path) -> None:
    policy = parse_policy({"version": 1, "name": "daily", "dataCaps": [
        {"name": "day", "limit": "1GB", "period": "day", "scope": "any", "alerts": [50, 100], "action": "suspend"}]})  # fmt: skip
    ledger = UsageLedger(tmp_path / "u.json")
    assert [p for _, p in ledger.record(ICCID, policy, 2 * GB, now=T0).alerts] == [50, 100]
    assert ledger.record(ICCID, policy, 1, now=T0 + timedelta(hours=23)).delivered == 0
    next_day = ledger.record(ICCID, policy, 600 * MB, now=T0 + timedelta(days=1))
    assert next_day.delivered == 600 * MB and [p for _, p in next_day.alerts] == [50]


def test_throttle_and_notify_caps_keep_data_flowing(tmp_path: Path) -> None:
    policy = load_policy(EXAMPLES / "home-monthly-throttle.toml")
    ledger = UsageLedger(tmp_path / "u.json")
    home = ledger.record(ICCID, policy, 21 * GB, now=T0)
    assert home.delivered == 21 * GB and any(m.startswith("throttled: ") and "512 kbit/s" in m for m in home.messages)
    roaming = ledger.record(ICCID, policy, 600 * MB, now=T0, roaming=Network("262", "01"))
    assert roaming.delivered == 600 * MB and [p for _, p in roaming.alerts] == [50, 100]
    no_data = ledger.record(ICCID, policy, 1 * MB, now=T0, roaming=Network("310", "260"))
    assert no_data.delivered == 0 and "data roaming is not allowed" in no_data.messages[0]
