"""The profile lifecycle at the SM-DP+ (SGP.22 v2.x sections 3.3, 5.3 and 5.6): states, transitions, decisions.

Every change of a profile's state — ES2+ order functions, ES9+ download steps, notifications, housekeeping,
the CLI — goes through this module, called by the services inside the transaction that holds the profile's
row lock.  Nothing else assigns ``state``.  The functions are pure: they read and change the attributes of a
profile row (:class:`LifecycleProfile`) and of a download session (:class:`LifecycleSession`) and raise
:class:`~smdp.rsp.status.RspError` with the SGP.22 code when a message may not do what it asks.

Three facts tie a message to the profile it may change:

* ``order_seq`` — the order generation.  CancelOrder ends an order and starts a new generation; a download
  session remembers the generation it authenticated for, so nothing it sends later can act on a newer order
  of the same ICCID (a re-ordered profile is a new customer's).
* ``bpp_transaction_id`` — the session whose Bound Profile Package is the one outstanding.  Only that
  session's ProfileInstallationResult settles the profile (SGP.22 5.6.4); a stale result of an earlier
  attempt, a late one after a cancel, or one from a session that never received a BPP is recorded and
  acknowledged but changes nothing.
* ``eid`` — the eUICC the profile is bound to: the EID of the order (ES2+) or, once a BPP is delivered, the
  eUICC that received it.  Notifications count only from that EID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from smdp.rsp.status import (
    CONFIRMATION_CODE_RETRIES_EXCEEDED,
    DOWNLOAD_ORDER_EXPIRED,
    EID_REFUSED,
    INVALID_TRANSITION,
    MAX_RETRIES_EXCEEDED,
    PROFILE_NOT_RELEASED,
    RspError,
)

CC_MAX_FAILURES = 3  # confirmation-code attempts per order (SGP.22 3.1.3: the SM-DP+ limits them)


class ProfileState(str, Enum):
    """Profile states at the SM-DP+ (SGP.22 section 3.3 / 5.3 ES2+ lifecycle)."""

    AVAILABLE = "Available"
    ALLOCATED = "Allocated"
    LINKED = "Linked"
    CONFIRMED = "Confirmed"
    RELEASED = "Released"
    DOWNLOADED = "Downloaded"
    INSTALLED = "Installed"
    ERROR = "Error"
    UNAVAILABLE = "Unavailable"


class EuiccState(str, Enum):
    """What the eUICC holding an Installed profile last reported (SGP.22 5.6.4 other notifications)."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"


S = ProfileState

# The allowed transitions.  ES2+ drives Available..Released and the final Available/Unavailable of
# CancelOrder; ES9+ drives Released -> Downloaded -> Installed, and back to Released when a download
# attempt fails or is cancelled (download retry, SGP.22 3.1.3.3 / 5.6.5).
ALLOWED: dict[ProfileState, frozenset[ProfileState]] = {
    S.AVAILABLE: frozenset({S.ALLOCATED, S.LINKED, S.UNAVAILABLE}),
    S.ALLOCATED: frozenset({S.CONFIRMED, S.RELEASED, S.AVAILABLE, S.UNAVAILABLE}),
    S.LINKED: frozenset({S.CONFIRMED, S.RELEASED, S.AVAILABLE, S.UNAVAILABLE}),
    S.CONFIRMED: frozenset({S.RELEASED, S.AVAILABLE, S.UNAVAILABLE}),
    S.RELEASED: frozenset({S.DOWNLOADED, S.AVAILABLE, S.UNAVAILABLE}),
    S.DOWNLOADED: frozenset({S.INSTALLED, S.ERROR, S.RELEASED, S.AVAILABLE, S.UNAVAILABLE}),
    S.ERROR: frozenset({S.RELEASED, S.AVAILABLE, S.UNAVAILABLE}),
    S.INSTALLED: frozenset(),
    S.UNAVAILABLE: frozenset(),
}


class LifecycleProfile(Protocol):
    """The attributes of a profile row the lifecycle reads and writes."""

    state: str
    eid: str | None
    order_eid: str | None
    order_seq: int
    bpp_transaction_id: str | None
    euicc_state: str | None
    reusable: bool
    expires_at: datetime | None
    download_attempts: int
    max_download_attempts: int | None
    cc_hash: bytes | None
    cc_failures: int


class LifecycleSession(Protocol):
    """The attributes of a download session row the lifecycle reads."""

    transaction_id: str
    step: str
    eid: str | None
    order_seq: int | None


class SessionStep(str, Enum):
    """Where a download session is (SGP.22 3.1.3: the ES9+ calls in order)."""

    INITIATED = "initiated"  # after initiateAuthentication
    AUTHENTICATED = "authenticated"  # after authenticateClient
    BPP_DELIVERED = "bpp-delivered"  # after getBoundProfilePackage
    COMPLETED = "completed"  # a successful installation result received
    CANCELLED = "cancelled"
    FAILED = "failed"


# The states in which a profile has an order that CancelOrder may end.
ORDER_STATES = frozenset(s.value for s in (S.ALLOCATED, S.LINKED, S.CONFIRMED, S.RELEASED, S.DOWNLOADED, S.ERROR))

OPEN_STEPS = (SessionStep.INITIATED, SessionStep.AUTHENTICATED, SessionStep.BPP_DELIVERED)


# --- transitions ----------------------------------------------------------------------------------


def check_transition(current: str, target: ProfileState) -> None:
    if target not in ALLOWED[ProfileState(current)]:
        raise RspError(INVALID_TRANSITION, f"a {current} profile can't become {target.value}")


def move(profile: LifecycleProfile, target: ProfileState) -> None:
    """The one place a profile's state is assigned; staying in a state is not a transition."""
    check_transition(profile.state, target)
    profile.state = target.value


def initial_state(*, stock: bool) -> ProfileState:
    """A new profile: stock for ES2+ orders (Available), or a ready order (Released, e.g. an import)."""
    return S.AVAILABLE if stock else S.RELEASED


# --- ES2+ (SGP.22 5.3) ------------------------------------------------------------------------------


def start_order(profile: LifecycleProfile, eid: str | None) -> None:
    """DownloadOrder (5.3.1): an Available profile is allocated, or linked to ``eid``."""
    if profile.state != S.AVAILABLE.value:
        raise RspError(INVALID_TRANSITION, f"profile is {profile.state}, not Available")
    move(profile, S.LINKED if eid else S.ALLOCATED)
    profile.eid = profile.order_eid = eid


def confirm_order(profile: LifecycleProfile, eid: str | None, *, release: bool) -> None:
    """ConfirmOrder (5.3.2): the order is Confirmed, or Released if the operator says so."""
    check_transition(profile.state, S.CONFIRMED)
    move(profile, S.RELEASED if release else S.CONFIRMED)
    profile.eid = profile.order_eid = eid
    profile.cc_failures = 0


def release(profile: LifecycleProfile) -> None:
    """ReleaseProfile (5.3.4): only a Confirmed order becomes downloadable."""
    if profile.state != S.CONFIRMED.value:
        raise RspError(INVALID_TRANSITION, f"only a Confirmed profile can be released, not a {profile.state} one")
    move(profile, S.RELEASED)


def end_order(profile: LifecycleProfile, final: ProfileState) -> None:
    """CancelOrder (5.3.3): the order ends; the profile is Available again (a new order generation) or
    Unavailable.  Whatever a session of the ended order sends later is only recorded.  A profile with no
    order (Available) or whose order is done (Installed, Unavailable) has nothing to cancel."""
    if final not in (S.AVAILABLE, S.UNAVAILABLE):
        raise RspError(INVALID_TRANSITION, f"an order ends with the profile Available or Unavailable, not {final.value}")
    if profile.state not in ORDER_STATES:
        raise RspError(INVALID_TRANSITION, f"a {profile.state} profile has no order to cancel")
    move(profile, final)
    profile.order_seq += 1
    profile.eid = profile.order_eid = None
    profile.bpp_transaction_id = None
    profile.euicc_state = None
    profile.expires_at = None
    profile.download_attempts = profile.cc_failures = 0


# --- ES9+ download (SGP.22 5.6.2 / 5.6.3) --------------------------------------------------------------


def check_downloadable(profile: LifecycleProfile, eid: str, now: datetime) -> None:
    """May ``eid`` get a Bound Profile Package of this profile now?  Raises the SGP.22 5.6.2 code if not.

    An order made for an EID serves only that EID (8.1.1/3.8); a profile is offered while Released, and
    while Downloaded only to the eUICC that got its BPP (download retry, 3.1.3.3); otherwise 8.2/1.2.
    Reusable (R&D) profiles may go to any number of eUICCs, but still only while Released."""
    if profile.order_eid is not None and profile.order_eid != eid:
        raise RspError(EID_REFUSED)
    if profile.expires_at is not None and _aware(profile.expires_at) < now:
        raise RspError(DOWNLOAD_ORDER_EXPIRED)
    if profile.max_download_attempts is not None and profile.download_attempts >= profile.max_download_attempts:
        raise RspError(MAX_RETRIES_EXCEEDED)
    if profile.cc_hash is not None and profile.cc_failures >= CC_MAX_FAILURES:
        raise RspError(CONFIRMATION_CODE_RETRIES_EXCEEDED)
    if profile.state == S.RELEASED.value:
        if profile.eid is not None and profile.eid != eid and not profile.reusable:
            raise RspError(EID_REFUSED, "a failed download attempt bound the order to another eUICC")
        return
    if profile.state == S.DOWNLOADED.value and profile.eid == eid and not profile.reusable:
        return
    raise RspError(PROFILE_NOT_RELEASED, f"profile is {profile.state}")


def check_session_order(profile: LifecycleProfile, session: LifecycleSession) -> None:
    """A session acts only on the order it authenticated for (CancelOrder starts a new one)."""
    if session.order_seq != profile.order_seq:
        raise RspError(PROFILE_NOT_RELEASED, "the order this session was opened for has ended")


def deliver_bpp(profile: LifecycleProfile, session: LifecycleSession) -> None:
    """getBoundProfilePackage answered: the profile is Downloaded to the session's eUICC, and this session's
    installation result is the one that will settle it (an earlier attempt's is stale from now on)."""
    assert session.eid is not None
    if not profile.reusable and profile.state != S.DOWNLOADED.value:  # else a download retry by the same eUICC
        move(profile, S.DOWNLOADED)
    profile.download_attempts += 1
    if profile.reusable:
        return
    profile.eid = session.eid
    profile.bpp_transaction_id = session.transaction_id


def cancel_download(profile: LifecycleProfile, session: LifecycleSession) -> bool:
    """ES9+.CancelSession (5.6.5) after the BPP was delivered: the order is downloadable again (by the same
    eUICC), if that BPP is the outstanding one.  Returns whether the profile changed."""
    if not _outstanding(profile, session):
        return False
    move(profile, S.RELEASED)
    profile.bpp_transaction_id = None
    return True


# --- notifications (SGP.22 5.6.4) -----------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What a verified notification does: ``applied`` or only recorded, and why (kept with the record)."""

    applied: bool
    reason: str


def installation_result(profile: LifecycleProfile, session: LifecycleSession, *, success: bool) -> Decision:
    """A verified ProfileInstallationResult of ``session``: settle the profile if that session delivered the
    outstanding BPP of the current order to the eUICC the profile is bound to; otherwise record only."""
    if session.step != SessionStep.BPP_DELIVERED.value:
        return Decision(False, f"session is {session.step}: it holds no outstanding BPP")
    if session.order_seq != profile.order_seq:
        return Decision(False, "the order of this session has ended")
    if profile.reusable:  # any number of eUICCs: the result is the operator's news, not a state change
        return Decision(True, "reusable profile: installed" if success else "reusable profile: installation failed")
    if not _outstanding(profile, session):
        return Decision(False, "a later download attempt superseded this session")
    if success:
        move(profile, S.INSTALLED)
        profile.euicc_state = EuiccState.DISABLED.value  # SGP.22 3.1.3: a new profile is installed disabled
    else:
        move(profile, S.RELEASED)  # download retry by the same eUICC (SGP.22 3.1.3.3)
    profile.bpp_transaction_id = None
    return Decision(True, "installed" if success else "installation failed: downloadable again by the same eUICC")


_EVENT_STATES = {"enable": EuiccState.ENABLED, "disable": EuiccState.DISABLED, "delete": EuiccState.DELETED}


def profile_management_event(profile: LifecycleProfile, eid: str, event: str) -> Decision:
    """A verified enable/disable/delete notification from ``eid``: the eUICC-side state of an Installed profile,
    taken only from the eUICC that holds it."""
    target = _EVENT_STATES.get(event)
    if target is None:
        return Decision(False, f"{event} is not a profile management event")
    if profile.reusable:
        return Decision(False, "reusable profile: installed on any number of eUICCs")
    if profile.state != S.INSTALLED.value:
        return Decision(False, f"profile is {profile.state}, not Installed")
    if profile.eid != eid:
        return Decision(False, "the profile is installed on another eUICC")
    if profile.euicc_state == EuiccState.DELETED.value:
        return Decision(False, "the profile was already deleted from this eUICC")
    profile.euicc_state = target.value
    return Decision(True, f"profile {target.value} on its eUICC")


def _outstanding(profile: LifecycleProfile, session: LifecycleSession) -> bool:
    return (
        profile.state == S.DOWNLOADED.value
        and profile.bpp_transaction_id == session.transaction_id
        and profile.eid == session.eid
        and profile.order_seq == session.order_seq
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
