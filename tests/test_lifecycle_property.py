"""Random interleavings of ES2+ calls, downloads, retries, cancellations and late, stale, duplicate or foreign
notifications from genuine eUICCs, with the lifecycle invariants checked after every step (SGP.22 3.3, 5.3,
5.6), on SQLite and on PostgreSQL.

The services are driven directly (no HTTP: the ES9+ binding has its own tests) by eUICCs that hold genuine
keys: the virtual eUICC answers AuthenticateServer and PrepareDownload, and installation results and
enable/disable/delete notifications are signed with the eUICC's own key for whichever session or ICCID the
strategy picks, as a misbehaving or unlucky device in the field would send them.

Invariants (a model of what the operator ordered and what each device was sent is kept beside the server):

* a BPP goes out only for the current, released order, with the right confirmation code if it has one, to
  the order's EID if it names one, never after the order was installed, and all BPPs of one order go to one
  eUICC (a download retry may send the same eUICC another; a reusable profile is out of scope here);
* a profile is Installed only on the eUICC that received a BPP of the current order in a session whose
  success result that eUICC sent;
* a Downloaded profile is bound to an eUICC that received a BPP of the current order;
* the eUICC-side state (enabled/disabled/deleted) follows only the notifications of the eUICC holding the
  profile, in order, a delete being final.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import select

from smdp.codec import asn1
from smdp.codec.b64 import b64decode, b64encode
from smdp.crypto.sealed import Sealer
from smdp.lpa import es10
from smdp.pki.store import load_server_credentials
from smdp.profiles.saip import decode_iccid
from smdp.rsp.status import RspError
from smdp.services.download import DownloadService
from smdp.services.operators import add_operator
from smdp.services.orders import OrderService
from smdp.services.profiles import import_profile
from smdp.store.db import Database
from smdp.store.operators import operator_by_name
from smdp.store.tables import Operator, Profile
from tests.device_tools import (
    Device,
    authenticate,
    demo_iccid,
    demo_package,
    get_bpp,
    new_device,
)

ADDRESS = "smdp.test"
# 300 interleavings of up to 15 steps per backend keep the whole suite well under CI's 10 minutes; a deeper
# search: SMDP_PROPERTY_EXAMPLES=5000 python -m pytest tests/test_lifecycle_property.py
EXAMPLES = int(os.environ.get("SMDP_PROPERTY_EXAMPLES", "300"))
PROFILES = 2
REACHED: Counter[str] = Counter()  # what the examples got to, so that a useless generator fails the test
EVENT_STATE = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}


@dataclass
class World:
    """What lives across examples: one database, the services, an operator and three eUICCs."""

    loop: asyncio.AbstractEventLoop
    db: Database
    download: DownloadService
    ordering: OrderService
    operator: Operator
    devices: list[Device]

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@dataclass
class Order:
    eid: str | None
    matching_id: str | None = None
    cc: str | None = None
    released: bool = False
    ended: bool = False
    installed: bool = False
    bpp_eids: set[str] = field(default_factory=set)


@dataclass
class Session:
    transaction_id: str
    device: Device
    iccid: str | None = None
    order: Order | None = None
    auth: dict[str, Any] | None = None
    got_bpp: bool = False
    success_sent: bool = False


@dataclass
class ProfileModel:
    iccid: str
    order: Order | None = None  # the current order
    euicc_state: str | None = None  # as the holder's notifications should have set it


class LifecycleMachine(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.profiles = [ProfileModel(demo_iccid()) for _ in range(PROFILES)]
        for p in self.profiles:
            w.run(import_profile(w.db, demo_package(p.iccid), stock=True, operator_id=w.operator.id, profile_type="prop"))
        self.sessions: list[Session] = []
        self.current: dict[str, Session] = {}  # the session each eUICC is in

    def teardown(self) -> None:
        """Retire this example's orders, so that the next example's default SM-DP+ lookups can't find them."""
        for profile in self.profiles:
            eid = profile.order.eid if profile.order else None
            self.world.run(self._es2("cancel_order", iccid=profile.iccid, eid=eid, finalProfileStatusIndicator="Unavailable"))

    # --- the operator (ES2+) ---------------------------------------------------------------------------

    async def _es2(self, function: str, **body: Any) -> dict[str, Any] | None:
        fn = getattr(self.world.ordering, function)
        try:
            return await fn({k: v for k, v in body.items() if v is not None}, self.world.operator)
        except RspError:
            return None

    @initialize(
        bind=st.integers(-2, 2), default=st.booleans(), cc=st.booleans(), release=st.sampled_from([True, True, False]),
        download=st.sampled_from(["no", "authenticated", "yes", "yes, reported"]),
    )
    def first_order(self, bind: int, default: bool, cc: bool, release: bool, download: str) -> None:
        """Every example starts with an order, most of them released and downloaded (the result reported or
        still pending), so that the steps have something to misbehave around, before and after installation."""
        self.order(0, bind, default, cc, release or download != "no")
        if download == "authenticated":  # a session left open before its BPP
            order = self.profiles[0].order
            device = next((x for x in self.world.devices if order and x.eid == order.eid), self.world.devices[0])
            self.world.run(self._start(device, order.matching_id if order else "NOSUCHID"))
        elif download != "no":
            self.whole_download(-1, 0, "4711", download == "yes, reported")

    @rule(
        p=st.integers(0, PROFILES - 1), bind=st.integers(-2, 2), default=st.booleans(), cc=st.booleans(),
        release=st.sampled_from([True, True, False]),
    )
    def order(self, p: int, bind: int, default: bool, cc: bool, release: bool) -> None:
        free = [profile for profile in self.profiles if profile.order is None]
        if not free:
            return
        profile = free[p % len(free)]
        eid = self.world.devices[bind].eid if bind >= 0 else None
        default = default and eid is not None
        if self.world.run(self._es2("download_order", iccid=profile.iccid, eid=eid)) is None:
            return
        profile.order = Order(eid=eid)
        code = "4711" if cc else None
        confirmed = self.world.run(
            self._es2("confirm_order", iccid=profile.iccid, matchingId="" if default else None, confirmationCode=code, releaseFlag=release)
        )
        if confirmed is not None:
            profile.order.matching_id, profile.order.cc, profile.order.released = confirmed.get("matchingId"), code, release

    @rule(p=st.integers(0, PROFILES - 1))
    def release(self, p: int) -> None:
        profile = self.profiles[p]
        if self.world.run(self._es2("release_profile", iccid=profile.iccid)) is not None:
            assert profile.order is not None
            profile.order.released = True

    @rule(p=st.integers(0, PROFILES - 1), final=st.sampled_from(["Available", "Available", "Unavailable"]))
    def cancel_order(self, p: int, final: str) -> None:
        profile = self.profiles[p]
        eid = profile.order.eid if profile.order else None
        done = self.world.run(self._es2("cancel_order", iccid=profile.iccid, eid=eid, finalProfileStatusIndicator=final))
        if done is not None:
            assert profile.order is not None
            profile.order.ended = True
            profile.order = None
            profile.euicc_state = None

    # --- the devices (ES9+) ----------------------------------------------------------------------------

    async def _start(self, device: Device, matching_id: str | None) -> None:
        try:
            transaction_id, auth = await authenticate(self.world.download, device, matching_id, ADDRESS)
        except RspError as error:
            auth, transaction_id = None, error.transaction_id  # type: ignore[attr-defined]
        session = Session(transaction_id, device)
        self.sessions.append(session)
        self.current[device.eid] = session
        if auth is None:
            return
        session.auth = auth
        session.iccid = decode_iccid(asn1.rsp().decode("StoreMetadataRequest", b64decode(auth["profileMetadata"]))["iccid"])
        model = self._profile(session.iccid)
        session.order = model.order
        assert model.order is not None and model.order.released, "a download was offered for an order that is not released"

    @rule(d=st.integers(0, 2), p=st.integers(0, PROFILES - 1), how=st.sampled_from(["current", "current", "stale", "default"]))
    def start_download(self, d: int, p: int, how: str) -> None:
        device, profile = self.world.devices[d], self.profiles[p]
        if how == "default":
            matching_id = None
        elif how == "stale":  # a matching ID this device was given for an earlier order of this ICCID
            stale = [s.order.matching_id for s in self.sessions if s.iccid == profile.iccid and s.order and s.order.matching_id]
            matching_id = stale[0] if stale else "NOSUCHID"
        else:
            matching_id = profile.order.matching_id if profile.order and profile.order.matching_id else "NOSUCHID"
        self.world.run(self._start(device, matching_id))

    async def _get_bpp(self, session: Session, code: str | None) -> None:
        assert session.auth is not None
        try:
            await get_bpp(self.world.download, session.device, session.transaction_id, session.auth, code)
        except RspError:
            return
        order, eid = session.order, session.device.eid
        assert order is not None and session.iccid is not None
        assert order is self._profile(session.iccid).order and not order.ended, "a BPP of an ended order"
        assert order.released, "a BPP of an order that is not released"
        assert order.cc is None or code == order.cc, "a BPP without the right confirmation code"
        assert order.eid is None or order.eid == eid, "a BPP for another eUICC than the order's"
        assert not order.installed, "a BPP of an order that is already installed"
        order.bpp_eids.add(eid)
        REACHED["BPP delivered"] += 1
        assert len(order.bpp_eids) == 1, "BPPs of one order went to two eUICCs"
        session.got_bpp = True

    @rule(i=st.integers(0, 2), code=st.sampled_from(["4711", "4711", "0000", None]))
    def get_bpp(self, i: int, code: str | None) -> None:
        waiting = [s for s in self.current.values() if s.auth is not None and not s.got_bpp]
        if waiting:
            self.world.run(self._get_bpp(waiting[i % len(waiting)], code))

    @rule(
        d=st.sampled_from([-1, -1, 0, 1, 2]), p=st.integers(0, PROFILES - 1), code=st.sampled_from(["4711", "4711", "0000"]),
        report=st.sampled_from([True, True, False]),
    )
    def whole_download(self, d: int, p: int, code: str, report: bool) -> None:
        """Start, get the BPP and (or not) report success at once: the common case, so that examples reach
        installed profiles and then misbehave around them.  ``d`` -1 is the order's eUICC (if it names one)."""
        ordered = [profile for profile in self.profiles if profile.order is not None]
        profile = ordered[p % len(ordered)] if ordered else self.profiles[p]
        matching_id = profile.order.matching_id if profile.order else "NOSUCHID"
        device = self.world.devices[max(d, 0)]
        if d < 0 and profile.order is not None and profile.order.eid is not None:
            device = next(x for x in self.world.devices if x.eid == profile.order.eid)
        self.world.run(self._start(device, matching_id))
        session = self.sessions[-1]
        if session.auth is None:
            return
        self.world.run(self._get_bpp(session, code))
        if report and session.got_bpp:
            self._send_result(session, success=True, repeat=False)

    @rule(i=st.integers(0, 5), retry_succeeds=st.booleans(), stale_success=st.booleans())
    def retry_then_stale_result(self, i: int, retry_succeeds: bool, stale_success: bool) -> None:
        """Download retry (SGP.22 3.1.3.3): a device whose BPP is still outstanding (no result sent) downloads
        again in a new session, reports that attempt, and only then the first attempt's result arrives."""
        pending = [s for s in self.sessions if s.got_bpp and not s.success_sent and s.order is not None and not s.order.ended]
        if not pending:
            return
        first = pending[i % len(pending)]
        model = self._profile(first.iccid or "")
        assert first.order is not None
        self.world.run(self._start(first.device, first.order.matching_id))
        retry = self.sessions[-1]
        if retry.auth is not None:
            self.world.run(self._get_bpp(retry, first.order.cc))
            if retry.got_bpp:
                self._send_result(retry, success=retry_succeeds, repeat=False)
        self._send_result(first, success=stale_success, repeat=False)
        REACHED["retry then stale result"] += model is not None

    @rule(i=st.integers(0, 5), bind=st.integers(-2, 2), code=st.sampled_from(["4711", "0000"]))
    def reorder_under_an_open_session(self, i: int, bind: int, code: str) -> None:
        """The operator cancels and re-orders an ICCID while a device's session for the old order is still open;
        then that device asks for the BPP (SGP.22 5.3.3: nothing of the old order may act on the new one)."""
        waiting = [s for s in self.sessions if s.auth is not None and not s.got_bpp and s.order is not None and not s.order.ended]
        if not waiting:
            return
        session = waiting[i % len(waiting)]
        profile = self._profile(session.iccid or "")
        self.cancel_order(self.profiles.index(profile), "Available")
        free = [m for m in self.profiles if m.order is None]
        self.order(free.index(profile) if profile in free else 0, bind, False, False, True)
        self.world.run(self._get_bpp(session, code))
        REACHED["reorder under an open session"] += 1

    @rule(d=st.integers(0, 2))
    def cancel_session(self, d: int) -> None:
        session = self.current.get(self.world.devices[d].eid)
        if session is None or session.auth is None:
            return
        response = es10.cancel_session(session.device.euicc, bytes.fromhex(session.transaction_id), "endUserRejection")
        body = {"transactionId": session.transaction_id, "cancelSessionResponse": b64encode(response)}
        with suppress(RspError):
            self.world.run(self.world.download.cancel_session(body))

    @rule(s=st.integers(0, 50), success=st.booleans(), repeat=st.booleans())
    def installation_result(self, s: int, success: bool, repeat: bool) -> None:
        """Any device's result for any of its sessions, at any time: stale, late, duplicated, for a session
        that never received a BPP, for an order that has ended."""
        if self.sessions:
            self._send_result(self.sessions[s % len(self.sessions)], success=success, repeat=repeat)

    def _send_result(self, session: Session, *, success: bool, repeat: bool) -> None:
        iccid = session.iccid or self.profiles[0].iccid
        body = session.device.installation_result(
            session.transaction_id, iccid, ADDRESS, self.world.download.credentials.smdp_oid, success=success
        )
        for _ in range(2 if repeat else 1):
            # every session here reached a verified authenticateClient: the server knows the eUICC's key, so a
            # result is always acknowledged (recorded), whether or not it changes anything
            self.world.run(self.world.download.handle_notification({"pendingNotification": body}))
        if success:
            session.success_sent = True
        REACHED["stale or foreign result" if not (session.got_bpp and session is self.current.get(session.device.eid)) else "result"] += 1

    @rule(d=st.sampled_from([-1, -1, 0, 1, 2]), p=st.integers(0, PROFILES - 1), event=st.sampled_from(["enable", "disable", "delete"]))
    def management_event(self, d: int, p: int, event: str) -> None:
        """enable/disable/delete from any eUICC about any ICCID; ``d`` -1 is the eUICC holding it, if any."""
        installed = [m for m in self.profiles if m.order is not None and m.order.installed]
        model = installed[p % len(installed)] if installed else self.profiles[p]
        before = self._row(model.iccid)
        device = self.world.devices[max(d, 0)]
        if d < 0 and before.eid is not None:
            device = next((x for x in self.world.devices if x.eid == before.eid), device)
        body = device.management_notification(event, model.iccid, ADDRESS)
        self.world.run(self.world.download.handle_notification({"pendingNotification": body}))
        holder = before.state == "Installed" and before.eid == device.eid
        if holder and model.euicc_state != "deleted":
            model.euicc_state = EVENT_STATE[event]
            REACHED["management event applied"] += 1

    # --- invariants --------------------------------------------------------------------------------------

    def _profile(self, iccid: str) -> ProfileModel:
        return next(p for p in self.profiles if p.iccid == iccid)

    def _row(self, iccid: str) -> Profile:
        async def read() -> Profile:
            async with self.world.db.transaction() as db:
                return (await db.exec(select(Profile).where(Profile.iccid == iccid))).one()

        return self.world.run(read())

    @invariant()
    def profiles_follow_the_lifecycle(self) -> None:
        for model in self.profiles:
            row = self._row(model.iccid)
            order = model.order
            if row.state in ("Available", "Unavailable"):
                assert order is None, f"{row.state} while the model has an order"
                assert row.eid is None and row.euicc_state is None
                continue
            assert order is not None, f"{row.state} without an order"
            if row.state == "Installed":
                assert row.eid in order.bpp_eids, "Installed on an eUICC that got no BPP of this order"
                assert any(
                    s.order is order and s.got_bpp and s.success_sent and s.device.eid == row.eid for s in self.sessions
                ), "Installed without a success result of a session that delivered this order's BPP"
                if not order.installed:
                    REACHED["installed"] += 1
                    order.installed = True
                    model.euicc_state = "disabled"
                assert row.euicc_state == model.euicc_state
            else:
                assert not order.installed, f"an installed order went back to {row.state}"
                assert row.euicc_state is None
            if row.state == "Downloaded":
                assert row.eid in order.bpp_eids, "Downloaded to an eUICC that got no BPP of this order"
            if row.state in ("Allocated", "Linked", "Confirmed"):
                assert not order.bpp_eids


async def _world(url: str, manifest: Path, tmp: Path) -> World:
    db = Database(url)
    await db.create_all()
    credentials = load_server_credentials(manifest)
    await add_operator(db, "acme")
    async with db.transaction() as session:
        operator = await operator_by_name(session, "acme")
    assert operator is not None
    devices = [new_device(tmp, manifest, f"device{i}") for i in range(3)]
    return World(
        asyncio.get_running_loop(),
        db,
        DownloadService(db, credentials, Sealer(os.urandom(32)), frozenset({ADDRESS})),
        OrderService(db, smdp_address=ADDRESS),
        operator,
        devices,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_random_interleavings_keep_the_lifecycle_invariants(
    backend: str, tmp_path: Path, pki_manifest: Path, request: pytest.FixtureRequest
) -> None:
    REACHED.clear()
    url = f"sqlite:///{tmp_path / 'smdp.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    loop = asyncio.new_event_loop()
    try:
        world = loop.run_until_complete(_world(url, pki_manifest, tmp_path))
        LifecycleMachine.world = world
        run_state_machine_as_test(
            LifecycleMachine,
            settings=settings(
                max_examples=EXAMPLES, stateful_step_count=15, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
        loop.run_until_complete(world.db.dispose())
    finally:
        loop.close()
    print(f"reached: {dict(REACHED)}")
    for outcome, share in [
        ("BPP delivered", 20), ("installed", 20), ("stale or foreign result", 20), ("management event applied", 500),
        ("retry then stale result", 500), ("reorder under an open session", 500),
    ]:
        assert REACHED[outcome] >= EXAMPLES // share, f"the examples rarely reach {outcome!r}: {dict(REACHED)}"

