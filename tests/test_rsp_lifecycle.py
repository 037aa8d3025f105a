"""Unit tests of the pure profile lifecycle, smdp.rsp.lifecycle (SGP.22 sections 3.3, 5.3 and 5.6).

Small dataclasses stand in for a profile row (LifecycleProfile) and a download session row (LifecycleSession):
no database, no server.  Every refusal is checked with its exact SGP.22 code, and every "recorded only"
decision with the profile compared before and after.  The last section checks the module's claim that
nothing else on the server side assigns a profile's ``state``.
"""

from __future__ import annotations

import ast
import copy
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from smdp.rsp import lifecycle
from smdp.rsp.lifecycle import (
    ALLOWED,
    CC_MAX_FAILURES,
    EuiccState,
    ProfileState,
    SessionStep,
)
from smdp.rsp.status import RspError

S = ProfileState
EID_A = "89049032123451234512345678901235"
EID_B = "89049032123451234512345678901299"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TID_1 = "00112233445566778899AABBCCDDEEFF"
TID_2 = "FFEEDDCCBBAA99887766554433221100"


@dataclass
class Row:
    """A profile row as the lifecycle sees it (LifecycleProfile)."""

    state: str = S.AVAILABLE.value
    eid: str | None = None
    order_eid: str | None = None
    order_seq: int = 0
    bpp_transaction_id: str | None = None
    euicc_state: str | None = None
    reusable: bool = False
    expires_at: datetime | None = None
    download_attempts: int = 0
    max_download_attempts: int | None = None
    cc_hash: bytes | None = None
    cc_failures: int = 0


@dataclass
class Session:
    """A download session row as the lifecycle sees it (LifecycleSession)."""

    transaction_id: str = TID_1
    step: str = SessionStep.AUTHENTICATED.value
    eid: str | None = EID_A
    order_seq: int | None = 0


def code(error: pytest.ExceptionInfo[RspError]) -> tuple[str, str]:
    return error.value.code.subject_code, error.value.code.reason_code


def released(**changes: object) -> Row:
    return Row(state=S.RELEASED.value, **changes)  # type: ignore[arg-type]


def delivered(session: Session, **changes: object) -> Row:
    """A Released profile whose BPP ``session`` received (getBoundProfilePackage answered)."""
    profile = released(**changes)
    lifecycle.deliver_bpp(profile, session)
    session.step = SessionStep.BPP_DELIVERED.value
    return profile


def installed(eid: str = EID_A) -> Row:
    session = Session(eid=eid)
    profile = delivered(session)
    assert lifecycle.installation_result(profile, session, success=True).applied
    return profile


# --- the transition table -------------------------------------------------------------------------

# Written out by hand from the lifecycle the module documents (ES2+ drives Available..Released and CancelOrder's
# Available/Unavailable; ES9+ Released -> Downloaded -> Installed, back to Released on a failed or cancelled
# attempt): a change to ALLOWED must show up here.
EXPECTED_ALLOWED = {
    (S.AVAILABLE, S.ALLOCATED), (S.AVAILABLE, S.LINKED), (S.AVAILABLE, S.UNAVAILABLE),
    (S.ALLOCATED, S.CONFIRMED), (S.ALLOCATED, S.RELEASED), (S.ALLOCATED, S.AVAILABLE), (S.ALLOCATED, S.UNAVAILABLE),
    (S.LINKED, S.CONFIRMED), (S.LINKED, S.RELEASED), (S.LINKED, S.AVAILABLE), (S.LINKED, S.UNAVAILABLE),
    (S.CONFIRMED, S.RELEASED), (S.CONFIRMED, S.AVAILABLE), (S.CONFIRMED, S.UNAVAILABLE),
    (S.RELEASED, S.DOWNLOADED), (S.RELEASED, S.AVAILABLE), (S.RELEASED, S.UNAVAILABLE),
    (S.DOWNLOADED, S.INSTALLED), (S.DOWNLOADED, S.ERROR), (S.DOWNLOADED, S.RELEASED),
    (S.DOWNLOADED, S.AVAILABLE), (S.DOWNLOADED, S.UNAVAILABLE),
    (S.ERROR, S.RELEASED), (S.ERROR, S.AVAILABLE), (S.ERROR, S.UNAVAILABLE),
}  # fmt: skip
PAIRS = [(a, b) for a in S for b in S if a is not b]


def test_allowed_table() -> None:
    assert set(ALLOWED) == set(S)
    assert {(a, b) for a, targets in ALLOWED.items() for b in targets} == EXPECTED_ALLOWED
    assert ALLOWED[S.INSTALLED] == ALLOWED[S.UNAVAILABLE] == frozenset()  # final states


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_move(current: ProfileState, target: ProfileState) -> None:
    profile = Row(state=current.value, eid=EID_A, order_seq=3)
    before = copy.copy(profile)
    if (current, target) in EXPECTED_ALLOWED:
        lifecycle.move(profile, target)
        assert profile == Row(state=target.value, eid=EID_A, order_seq=3)  # only the state changed
        assert isinstance(profile.state, str) and type(profile.state) is str  # the plain value, as the column holds
    else:
        with pytest.raises(RspError) as error:
            lifecycle.move(profile, target)
        assert code(error) == ("8.2.1", "3.5")
        assert profile == before


@pytest.mark.parametrize("state", list(S), ids=[s.value for s in S])
def test_staying_in_a_state_is_not_a_transition(state: ProfileState) -> None:
    """No state lists itself: move() and check_transition() refuse staying put."""
    profile = Row(state=state.value)
    with pytest.raises(RspError) as error:
        lifecycle.move(profile, state)
    assert code(error) == ("8.2.1", "3.5")
    assert profile == Row(state=state.value)
    with pytest.raises(RspError) as error:
        lifecycle.check_transition(state.value, state)
    assert code(error) == ("8.2.1", "3.5")


def test_initial_state() -> None:
    assert lifecycle.initial_state(stock=True) is S.AVAILABLE
    assert lifecycle.initial_state(stock=False) is S.RELEASED


# --- ES2+ (SGP.22 5.3) ----------------------------------------------------------------------------


def test_start_order() -> None:
    linked = Row()
    lifecycle.start_order(linked, EID_A)
    assert (linked.state, linked.eid, linked.order_eid) == ("Linked", EID_A, EID_A)
    allocated = Row()
    lifecycle.start_order(allocated, None)
    assert (allocated.state, allocated.eid, allocated.order_eid) == ("Allocated", None, None)


@pytest.mark.parametrize("state", [s for s in S if s is not S.AVAILABLE], ids=lambda s: s.value)
def test_start_order_needs_an_available_profile(state: ProfileState) -> None:
    profile = Row(state=state.value, eid=EID_B, order_eid=EID_B)
    before = copy.copy(profile)
    with pytest.raises(RspError) as error:
        lifecycle.start_order(profile, EID_A)
    assert code(error) == ("8.2.1", "3.5")
    assert profile == before


@pytest.mark.parametrize("release", [False, True])
@pytest.mark.parametrize("state", [S.ALLOCATED, S.LINKED], ids=lambda s: s.value)
def test_confirm_order(state: ProfileState, release: bool) -> None:
    profile = Row(state=state.value, cc_failures=2, cc_hash=b"h" * 32)
    lifecycle.confirm_order(profile, EID_A, release=release)
    assert profile.state == ("Released" if release else "Confirmed")
    assert profile.eid == profile.order_eid == EID_A
    assert profile.cc_failures == 0
    assert profile.cc_hash == b"h" * 32  # the confirmation code itself is the caller's


@pytest.mark.parametrize("release", [False, True])
@pytest.mark.parametrize(
    "state", [s for s in S if s not in (S.ALLOCATED, S.LINKED)], ids=lambda s: s.value
)
def test_confirm_order_refused(state: ProfileState, release: bool) -> None:
    """Only an Allocated or Linked order can be confirmed: not twice, not a Released one, not stock."""
    profile = Row(state=state.value, cc_failures=1)
    before = copy.copy(profile)
    with pytest.raises(RspError) as error:
        lifecycle.confirm_order(profile, EID_A, release=release)
    assert code(error) == ("8.2.1", "3.5")
    assert profile == before


def test_release() -> None:
    profile = Row(state=S.CONFIRMED.value, eid=EID_A, order_eid=EID_A)
    lifecycle.release(profile)
    assert profile == Row(state=S.RELEASED.value, eid=EID_A, order_eid=EID_A)


@pytest.mark.parametrize("state", [s for s in S if s is not S.CONFIRMED], ids=lambda s: s.value)
def test_release_needs_a_confirmed_profile(state: ProfileState) -> None:
    profile = Row(state=state.value)
    with pytest.raises(RspError) as error:
        lifecycle.release(profile)
    assert code(error) == ("8.2.1", "3.5")
    assert profile == Row(state=state.value)


@pytest.mark.parametrize("final", [S.AVAILABLE, S.UNAVAILABLE], ids=lambda s: s.value)
@pytest.mark.parametrize(
    "state", [S.ALLOCATED, S.LINKED, S.CONFIRMED, S.RELEASED, S.DOWNLOADED, S.ERROR], ids=lambda s: s.value
)
def test_end_order(state: ProfileState, final: ProfileState) -> None:
    profile = Row(
        state=state.value, eid=EID_A, order_eid=EID_A, order_seq=4, bpp_transaction_id=TID_1, euicc_state="disabled",
        expires_at=NOW, download_attempts=2, max_download_attempts=5, cc_hash=b"h" * 32, cc_failures=2, reusable=True,
    )  # fmt: skip
    lifecycle.end_order(profile, final)
    assert profile == Row(
        state=final.value, order_seq=5, max_download_attempts=5, cc_hash=b"h" * 32, reusable=True
    )  # a new order generation, nothing of the old order left (the limit and reusability are the profile type's)


@pytest.mark.parametrize("final", [S.AVAILABLE, S.UNAVAILABLE], ids=lambda s: s.value)
@pytest.mark.parametrize("state", [S.AVAILABLE, S.INSTALLED, S.UNAVAILABLE], ids=lambda s: s.value)
def test_end_order_refused(state: ProfileState, final: ProfileState) -> None:
    """No order to cancel: stock (Available), or an order that is done (Installed, Unavailable)."""
    profile = Row(state=state.value, eid=EID_A, order_eid=EID_A, order_seq=2, euicc_state="enabled")
    before = copy.copy(profile)
    with pytest.raises(RspError) as error:
        lifecycle.end_order(profile, final)
    assert code(error) == ("8.2.1", "3.5")
    assert profile == before


@pytest.mark.parametrize(
    ("state", "final"),
    [(S.CONFIRMED, S.RELEASED), (S.ALLOCATED, S.CONFIRMED), (S.DOWNLOADED, S.INSTALLED), (S.DOWNLOADED, S.ERROR)],
    ids=lambda s: s.value,
)
def test_end_order_only_to_available_or_unavailable(state: ProfileState, final: ProfileState) -> None:
    profile = Row(state=state.value, eid=EID_A, order_seq=2, bpp_transaction_id=TID_1)
    before = copy.copy(profile)
    with pytest.raises(RspError) as error:
        lifecycle.end_order(profile, final)
    assert code(error) == ("8.2.1", "3.5")
    assert profile == before


# --- check_downloadable (SGP.22 5.6.2) ----------------------------------------------------------------


def refusal(profile: Row, eid: str = EID_A, now: datetime = NOW) -> tuple[str, str]:
    before = copy.copy(profile)
    with pytest.raises(RspError) as error:
        lifecycle.check_downloadable(profile, eid, now)
    assert profile == before  # a check changes nothing
    return code(error)


def downloadable(profile: Row, eid: str = EID_A, now: datetime = NOW) -> None:
    before = copy.copy(profile)
    lifecycle.check_downloadable(profile, eid, now)
    assert profile == before


def test_downloadable_released() -> None:
    downloadable(released())  # no order EID: any eUICC (matching ID flow)
    downloadable(released(eid=EID_A, order_eid=EID_A))
    downloadable(released(eid=EID_B), EID_B)


def test_refused_order_for_another_eid() -> None:
    assert refusal(released(eid=EID_B, order_eid=EID_B)) == ("8.1.1", "3.8")
    assert refusal(released(eid=EID_B, order_eid=EID_B, reusable=True)) == ("8.1.1", "3.8")


def test_expiry() -> None:
    assert refusal(released(expires_at=NOW - timedelta(seconds=1))) == ("8.8.5", "4.10")
    downloadable(released(expires_at=NOW))  # expired only once the time has passed
    downloadable(released(expires_at=NOW + timedelta(days=1)))
    # a naive expiry (as SQLite returns it) is UTC
    assert refusal(released(expires_at=(NOW - timedelta(seconds=1)).replace(tzinfo=None))) == ("8.8.5", "4.10")
    downloadable(released(expires_at=(NOW + timedelta(seconds=1)).replace(tzinfo=None)))


def test_attempt_limit() -> None:
    assert refusal(released(download_attempts=3, max_download_attempts=3)) == ("8.8.5", "6.4")
    assert refusal(released(download_attempts=4, max_download_attempts=3)) == ("8.8.5", "6.4")
    assert refusal(released(download_attempts=0, max_download_attempts=0)) == ("8.8.5", "6.4")
    downloadable(released(download_attempts=2, max_download_attempts=3))
    downloadable(released(download_attempts=1000))  # no limit


def test_confirmation_code_failures() -> None:
    assert CC_MAX_FAILURES == 3
    assert refusal(released(cc_hash=b"h" * 32, cc_failures=3)) == ("8.2.7", "6.4")
    assert refusal(released(cc_hash=b"h" * 32, cc_failures=4)) == ("8.2.7", "6.4")
    downloadable(released(cc_hash=b"h" * 32, cc_failures=2))
    downloadable(released(cc_hash=None, cc_failures=3))  # no code, nothing to block


@pytest.mark.parametrize("reusable", [False, True])
@pytest.mark.parametrize(
    "state",
    [S.AVAILABLE, S.ALLOCATED, S.LINKED, S.CONFIRMED, S.INSTALLED, S.ERROR, S.UNAVAILABLE],
    ids=lambda s: s.value,
)
def test_not_released(state: ProfileState, reusable: bool) -> None:
    assert refusal(Row(state=state.value, reusable=reusable)) == ("8.2", "1.2")
    assert refusal(Row(state=state.value, eid=EID_A, order_eid=EID_A, reusable=reusable)) == ("8.2", "1.2")


def test_released_but_bound_to_another_euicc() -> None:
    """A failed attempt by EID_A bound the (matching ID) order to EID_A: EID_B is refused, EID_A may retry."""
    profile = released(eid=EID_A)
    assert refusal(profile, EID_B) == ("8.1.1", "3.8")
    downloadable(profile, EID_A)
    downloadable(released(eid=EID_A, reusable=True), EID_B)  # a reusable profile goes to any eUICC


def test_downloaded_retry() -> None:
    """While Downloaded, only the eUICC that got the BPP may fetch it again (download retry, SGP.22 3.1.3.3)."""
    profile = Row(state=S.DOWNLOADED.value, eid=EID_A, bpp_transaction_id=TID_1)
    downloadable(profile, EID_A)
    assert refusal(profile, EID_B) == ("8.2", "1.2")
    ordered = Row(state=S.DOWNLOADED.value, eid=EID_A, order_eid=EID_A, bpp_transaction_id=TID_1)
    downloadable(ordered, EID_A)
    assert refusal(ordered, EID_B) == ("8.1.1", "3.8")
    assert refusal(Row(state=S.DOWNLOADED.value, eid=EID_A, reusable=True), EID_A) == ("8.2", "1.2")


def test_refusal_order() -> None:
    """EID, then expiry, then attempts, then confirmation code failures, then the state."""
    profile = Row(
        state=S.INSTALLED.value, eid=EID_B, order_eid=EID_B, expires_at=NOW - timedelta(days=1),
        download_attempts=3, max_download_attempts=3, cc_hash=b"h" * 32, cc_failures=3,
    )  # fmt: skip
    assert refusal(profile) == ("8.1.1", "3.8")
    profile.order_eid = None
    assert refusal(profile) == ("8.8.5", "4.10")
    profile.expires_at = None
    assert refusal(profile) == ("8.8.5", "6.4")
    profile.max_download_attempts = None
    assert refusal(profile) == ("8.2.7", "6.4")
    profile.cc_failures = 0
    assert refusal(profile) == ("8.2", "1.2")


def test_check_session_order() -> None:
    profile = released(order_seq=2)
    lifecycle.check_session_order(profile, Session(order_seq=2))
    for seq in (1, 3, None):
        with pytest.raises(RspError) as error:
            lifecycle.check_session_order(profile, Session(order_seq=seq))
        assert code(error) == ("8.2", "1.2")


# --- deliver_bpp / cancel_download (SGP.22 5.6.3 / 5.6.5) ---------------------------------------------


def test_deliver_bpp() -> None:
    profile = released(order_eid=None, order_seq=1, download_attempts=1)
    lifecycle.deliver_bpp(profile, Session(transaction_id=TID_1, eid=EID_A, order_seq=1))
    assert profile == Row(
        state=S.DOWNLOADED.value, eid=EID_A, order_seq=1, bpp_transaction_id=TID_1, download_attempts=2
    )


def test_deliver_bpp_again_to_the_same_euicc() -> None:
    """A retry while Downloaded: the new session's BPP is the outstanding one now."""
    profile = delivered(Session(transaction_id=TID_1))
    lifecycle.check_downloadable(profile, EID_A, NOW)
    lifecycle.deliver_bpp(profile, Session(transaction_id=TID_2))
    assert profile == Row(state=S.DOWNLOADED.value, eid=EID_A, bpp_transaction_id=TID_2, download_attempts=2)


def test_deliver_bpp_reusable() -> None:
    profile = released(reusable=True, eid=EID_B)
    lifecycle.deliver_bpp(profile, Session(transaction_id=TID_1, eid=EID_A))
    assert profile == released(reusable=True, eid=EID_B, download_attempts=1)  # stays Released, unbound


@pytest.mark.parametrize("state", [S.AVAILABLE, S.CONFIRMED, S.INSTALLED, S.UNAVAILABLE], ids=lambda s: s.value)
def test_refused_deliver_bpp_changes_nothing(state: ProfileState) -> None:
    profile = Row(state=state.value, eid=EID_A)
    before = copy.copy(profile)
    with pytest.raises(RspError) as error:
        lifecycle.deliver_bpp(profile, Session())
    assert code(error) == ("8.2.1", "3.5")
    assert profile == before


def test_cancel_download() -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session)
    assert lifecycle.cancel_download(profile, session) is True
    assert profile == released(eid=EID_A, download_attempts=1)  # downloadable again, by the same eUICC
    assert refusal(profile, EID_B) == ("8.1.1", "3.8")
    downloadable(profile, EID_A)


def test_cancel_download_not_outstanding() -> None:
    first, second = Session(transaction_id=TID_1), Session(transaction_id=TID_2)
    profile = delivered(first)
    lifecycle.deliver_bpp(profile, second)
    before = copy.copy(profile)
    assert lifecycle.cancel_download(profile, first) is False  # superseded by the second attempt
    assert lifecycle.cancel_download(profile, Session(transaction_id=TID_2, eid=EID_B)) is False  # another eUICC
    assert lifecycle.cancel_download(profile, Session(transaction_id=TID_2, order_seq=1)) is False  # another order
    assert profile == before
    assert lifecycle.cancel_download(profile, second) is True
    before = copy.copy(profile)
    assert lifecycle.cancel_download(profile, second) is False  # already cancelled
    assert profile == before


def test_cancel_download_without_a_bpp() -> None:
    for profile in (released(), released(reusable=True), Row(state=S.CONFIRMED.value), installed()):
        before = copy.copy(profile)
        assert lifecycle.cancel_download(profile, Session()) is False
        assert profile == before


# --- installation results (SGP.22 5.6.4) ----------------------------------------------------------------


def test_installation_success() -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session, order_eid=EID_A, eid=EID_A)
    decision = lifecycle.installation_result(profile, session, success=True)
    assert decision.applied
    assert profile == Row(
        state=S.INSTALLED.value, eid=EID_A, order_eid=EID_A, euicc_state=EuiccState.DISABLED.value, download_attempts=1
    )


def test_installation_failure() -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session)
    decision = lifecycle.installation_result(profile, session, success=False)
    assert decision.applied
    assert profile == released(eid=EID_A, download_attempts=1)  # the EID is kept: retry by the same eUICC only
    downloadable(profile, EID_A)
    assert refusal(profile, EID_B) == ("8.1.1", "3.8")


def not_applied(profile: Row, session: Session, *, success: bool) -> str:
    before = copy.copy(profile)
    decision = lifecycle.installation_result(profile, session, success=success)
    assert not decision.applied, decision
    assert profile == before
    return decision.reason


@pytest.mark.parametrize("success", [True, False])
def test_installation_result_of_a_superseded_session(success: bool) -> None:
    first, second = Session(transaction_id=TID_1), Session(transaction_id=TID_2)
    profile = delivered(first)
    lifecycle.deliver_bpp(profile, second)
    second.step = SessionStep.BPP_DELIVERED.value
    assert "superseded" in not_applied(profile, first, success=success)
    assert lifecycle.installation_result(profile, second, success=success).applied


@pytest.mark.parametrize("success", [True, False])
def test_installation_result_after_the_order_ended(success: bool) -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session, order_eid=EID_A, eid=EID_A)
    lifecycle.end_order(profile, S.AVAILABLE)
    not_applied(profile, session, success=success)
    # re-ordered for another customer and delivered to them: the old session still changes nothing
    lifecycle.start_order(profile, EID_B)
    lifecycle.confirm_order(profile, EID_B, release=True)
    new = Session(transaction_id=TID_2, eid=EID_B, order_seq=profile.order_seq)
    lifecycle.deliver_bpp(profile, new)
    new.step = SessionStep.BPP_DELIVERED.value
    assert "ended" in not_applied(profile, session, success=success)
    # the same transactionId under the old order generation doesn't count either
    assert "ended" in not_applied(profile, Session(transaction_id=TID_2, step="bpp-delivered", eid=EID_B), success=success)
    assert lifecycle.installation_result(profile, new, success=success).applied


@pytest.mark.parametrize("success", [True, False])
@pytest.mark.parametrize("step", [s for s in SessionStep if s is not SessionStep.BPP_DELIVERED], ids=lambda s: s.value)
def test_installation_result_of_a_session_without_bpp(step: SessionStep, success: bool) -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session)
    session.step = step.value
    assert "no outstanding BPP" in not_applied(profile, session, success=success)
    assert "no outstanding BPP" in not_applied(released(), Session(step=step.value), success=success)


@pytest.mark.parametrize("success", [True, False])
def test_installation_result_from_another_euicc(success: bool) -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session)
    not_applied(profile, Session(transaction_id=TID_1, step="bpp-delivered", eid=EID_B), success=success)


@pytest.mark.parametrize("success", [True, False])
def test_installation_result_twice(success: bool) -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session)
    assert lifecycle.installation_result(profile, session, success=success).applied
    not_applied(profile, session, success=True)
    not_applied(profile, session, success=False)


def test_installation_result_reusable() -> None:
    session = Session(transaction_id=TID_1)
    profile = delivered(session, reusable=True)
    before = copy.copy(profile)
    assert lifecycle.installation_result(profile, session, success=True).applied
    assert profile == before == released(reusable=True, download_attempts=1)


# --- other notifications (SGP.22 5.6.4) ---------------------------------------------------------------------


def event(profile: Row, eid: str, name: str) -> bool:
    before = copy.copy(profile)
    decision = lifecycle.profile_management_event(profile, eid, name)
    if not decision.applied:
        assert profile == before
    return decision.applied


def test_profile_management_events() -> None:
    profile = installed(EID_A)
    assert profile.euicc_state == "disabled"
    assert event(profile, EID_A, "enable") and profile.euicc_state == "enabled"
    assert event(profile, EID_A, "disable") and profile.euicc_state == "disabled"
    assert event(profile, EID_A, "enable") and profile.euicc_state == "enabled"
    assert event(profile, EID_A, "delete") and profile.euicc_state == "deleted"
    assert profile.state == "Installed"
    for name in ("enable", "disable", "delete"):  # delete is final
        assert not event(profile, EID_A, name)
    assert profile.euicc_state == "deleted"


@pytest.mark.parametrize("name", ["enable", "disable", "delete"])
def test_profile_management_event_from_another_euicc(name: str) -> None:
    assert not event(installed(EID_A), EID_B, name)


@pytest.mark.parametrize("name", ["enable", "disable", "delete"])
@pytest.mark.parametrize("state", [s for s in S if s is not S.INSTALLED], ids=lambda s: s.value)
def test_profile_management_event_not_installed(state: ProfileState, name: str) -> None:
    assert not event(Row(state=state.value, eid=EID_A, bpp_transaction_id=TID_1), EID_A, name)


@pytest.mark.parametrize("name", ["install", "Enable", "rename", "", "deleted"])
def test_unknown_events_are_ignored(name: str) -> None:
    assert not event(installed(EID_A), EID_A, name)


@pytest.mark.parametrize("name", ["enable", "disable", "delete"])
def test_profile_management_event_reusable(name: str) -> None:
    assert not event(Row(state=S.INSTALLED.value, eid=EID_A, reusable=True, euicc_state="disabled"), EID_A, name)


# --- whole flows ---------------------------------------------------------------------------------------------


def test_order_to_installation() -> None:
    profile = Row(state=lifecycle.initial_state(stock=True).value)
    lifecycle.start_order(profile, EID_A)
    lifecycle.confirm_order(profile, EID_A, release=False)
    refusal(profile)
    lifecycle.release(profile)
    downloadable(profile)
    failed = Session(transaction_id=TID_1)
    lifecycle.deliver_bpp(profile, failed)
    failed.step = SessionStep.BPP_DELIVERED.value
    assert lifecycle.installation_result(profile, failed, success=False).applied
    retry = Session(transaction_id=TID_2)
    downloadable(profile)
    lifecycle.deliver_bpp(profile, retry)
    retry.step = SessionStep.BPP_DELIVERED.value
    assert lifecycle.installation_result(profile, retry, success=True).applied
    assert profile == Row(
        state="Installed", eid=EID_A, order_eid=EID_A, euicc_state="disabled", download_attempts=2
    )
    with pytest.raises(RspError) as error:
        lifecycle.end_order(profile, S.AVAILABLE)
    assert code(error) == ("8.2.1", "3.5")


# --- only the lifecycle assigns a profile's state -----------------------------------------------------------

SMDP = Path(lifecycle.__file__).resolve().parents[1]  # the smdp package
LIFECYCLE = Path("rsp/lifecycle.py")
# The device side (virtual eUICC, LPA) has its own ``state`` objects, not the SM-DP+'s profile rows.
DEVICE_SIDE = ("euicc", "lpa")
MUST_SCAN = ("services", "web", "store", "cli", "rsp", "server.py")


def _modules(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*.py") if p.relative_to(root).parts[0] not in DEVICE_SIDE and "__pycache__" not in p.parts
    )


def _from_initial_state(value: ast.expr) -> bool:
    """``initial_state(...)`` or ``initial_state(...).value`` (also as ``lifecycle.initial_state``)."""
    if isinstance(value, ast.Attribute) and value.attr == "value":
        value = value.value
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    return (isinstance(func, ast.Name) and func.id == "initial_state") or (
        isinstance(func, ast.Attribute) and func.attr == "initial_state"
    )


def _callee(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def state_writers(root: Path) -> list[str]:
    """Where a module under ``root`` (but the lifecycle and the device side) writes a ``state``:

    * an attribute ``.state`` as an assignment target (=, +=, annotated, for/with targets, tuples) or deleted;
    * ``setattr(x, "state", ...)``;
    * ``state=`` passed to ``Profile(...)`` other than ``initial_state(...)``, or to a bulk ``.values(...)``."""
    found: list[str] = []
    for path in _modules(root):
        relative = path.relative_to(root)
        if relative == LIFECYCLE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            where = f"{relative}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute) and node.attr == "state" and isinstance(node.ctx, (ast.Store, ast.Del)):
                found.append(f"{where} assigns {ast.unparse(node)}")
            elif isinstance(node, ast.Call):
                name = _callee(node)
                if (
                    name == "setattr"
                    and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value == "state"
                ):
                    found.append(f"{where} {ast.unparse(node)}")
                if name in ("Profile", "values"):
                    for keyword in node.keywords:
                        if keyword.arg == "state" and not (name == "Profile" and _from_initial_state(keyword.value)):
                            found.append(f"{where} {name}(state={ast.unparse(keyword.value)})")
    return found


def test_only_the_lifecycle_assigns_state() -> None:
    scanned = {p.relative_to(SMDP).parts[0] for p in _modules(SMDP)}
    assert set(MUST_SCAN) <= scanned, sorted(set(MUST_SCAN) - scanned)
    assert (SMDP / LIFECYCLE).is_file()
    assert state_writers(SMDP) == []


def test_the_lifecycle_itself_is_what_the_scan_would_find() -> None:
    """The one assignment in smdp/rsp/lifecycle.py is of the kind the scan detects (so the rule isn't vacuous)."""
    tree = ast.parse((SMDP / LIFECYCLE).read_text(encoding="utf-8"))
    stores = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "state" and isinstance(n.ctx, ast.Store)]
    assert [ast.unparse(n) for n in stores] == ["profile.state"]


@pytest.mark.parametrize(
    ("code_line", "expected"),
    [
        ('profile.state = "Installed"', 'assigns profile.state'),
        ('row.state = ProfileState.INSTALLED.value', 'assigns row.state'),
        ('profile.eid, profile.state = None, "Released"', 'assigns profile.state'),
        ('profile.state: str = "Released"', 'assigns profile.state'),
        ('profile.state += ""', 'assigns profile.state'),
        ('setattr(profile, "state", "Installed")', "setattr(profile, 'state'"),
        ('Profile(iccid="1", state="Released", der=b"")', 'Profile(state=\'Released\')'),
        ('update(Profile).values(state="Available")', "values(state='Available')"),
    ],
)
def test_the_scan_catches_a_state_assignment(tmp_path: Path, code_line: str, expected: str) -> None:
    """A state written in services/download.py (of a copy of the package) fails the rule."""
    root = tmp_path / "smdp"
    shutil.copytree(SMDP, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    assert state_writers(root) == []
    download = root / "services" / "download.py"
    download.write_text(
        download.read_text(encoding="utf-8") + f"\n\ndef _bypass(profile, row):  # noqa\n    {code_line}\n", encoding="utf-8"
    )
    found = state_writers(root)
    assert len(found) == 1, found
    assert found[0].startswith("services/download.py:") and expected in found[0], found


def test_the_scan_allows_initial_state(tmp_path: Path) -> None:
    module = tmp_path / "smdp" / "services" / "new.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from smdp.rsp import lifecycle\n"
        "from smdp.rsp.lifecycle import initial_state\n"
        "a = Profile(state=initial_state(stock=True).value)\n"
        "b = Profile(state=lifecycle.initial_state(stock=False))\n"
        "c = euicc.state\n"  # reading is fine
        "d = InstalledProfileView(state=p.state)\n",
        encoding="utf-8",
    )
    (tmp_path / "smdp" / "euicc").mkdir()
    (tmp_path / "smdp" / "euicc" / "device.py").write_text("self.state = 'enabled'\n", encoding="utf-8")  # device side
    assert state_writers(tmp_path / "smdp") == []
