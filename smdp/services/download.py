"""The download session service: loads and saves ES9+ state around the sans-IO protocol core.

Each ES9+ call is one database transaction: the session row is locked (PostgreSQL) or the single SQLite
writer held, its step checked, the request verified, and the new state written, so that a replayed or
concurrent call can't advance a session twice and no profile is handed out twice.  What a verified message
may do to a profile is decided by :mod:`smdp.rsp.lifecycle`, under the profile's row lock.  Progress events
for operators are queued in the same transaction (see smdp.services.events).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.codec import b64
from smdp.crypto import ecdsa
from smdp.crypto.cc import confirmation_code_hash_from_digest, open_confirmation_code_digest
from smdp.crypto.sealed import Sealer
from smdp.pki.store import ServerCredentials
from smdp.profiles.metadata import MetadataError, ProfileMetadata
from smdp.rsp import es2, es8, es9, lifecycle, metadata, session_end
from smdp.rsp.fields import transaction_id as read_transaction_id
from smdp.rsp.lifecycle import CC_MAX_FAILURES, ProfileState, SessionStep
from smdp.rsp.status import (
    CONFIRMATION_CODE_MISSING,
    CONFIRMATION_CODE_REFUSED,
    CONFIRMATION_CODE_RETRIES_EXCEEDED,
    EID_REFUSED,
    EXECUTION_ERROR,
    MATCHING_ID_REFUSED,
    PPR_NOT_ALLOWED,
    TRANSACTION_ID_UNKNOWN,
    RspError,
)
from smdp.services import events
from smdp.services.profiles import open_package
from smdp.store import profiles, sessions
from smdp.store.db import Database
from smdp.store.tables import DownloadSession, Notification, Profile, touch

log = logging.getLogger(__name__)

# Where the default SM-DP+ flow (no matching ID, SGP.22 3.1.1.4) may find an order for the EID.
DEFAULT_ORDER_STATES = [ProfileState.RELEASED.value, ProfileState.DOWNLOADED.value]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _profile_metadata(profile: Profile) -> ProfileMetadata:
    """The profile's checked metadata.  Metadata are checked where they enter (import, profile types); a row
    that is not valid anyway (an older build, a manual edit) is logged naming the field, and the device gets
    1.2/4.2 without the details."""
    try:
        return ProfileMetadata.from_json(profile.profile_metadata)
    except MetadataError as exc:
        log.error("profile %s cannot be downloaded: %s", profile.iccid, exc)
        raise RspError(EXECUTION_ERROR, "the profile's metadata are not valid") from None


def _store_metadata(profile: Profile, row: DownloadSession, checked: ProfileMetadata | None = None) -> bytes:
    """StoreMetadataRequest; unless the profile says otherwise, enable/disable/delete notifications come here.
    ``checked``: the profile's metadata if the caller has already parsed them."""
    checked = (checked or _profile_metadata(profile)).with_default_notifications(row.smdp_address)
    return metadata.store_metadata_request(profile.iccid, checked)


def _key_values(row: DownloadSession) -> es9.SessionKeyValues:
    return es9.SessionKeyValues(row.transaction_id, row.server_challenge, row.smdp_address, row.ci_pkid)


def _code(error: RspError) -> str:
    return f"{error.code.subject_code}/{error.code.reason_code}"


@dataclass
class _Call:
    """One ES9+ call on a locked session row.  ``verified`` is set once the eUICC's signature over this
    session's data has been checked; ``keep_open`` lets a verified failure leave the session usable."""

    db: AsyncSession
    row: DownloadSession
    verified: bool = False
    keep_open: bool = False


@dataclass
class DownloadService:
    db: Database
    credentials: ServerCredentials
    sealer: Sealer
    addresses: frozenset[str]
    session_ttl: timedelta = timedelta(minutes=10)
    session_retention: timedelta = timedelta(days=30)  # how long ended sessions are kept (late notifications)
    # Lab option: also accept hashCc computed over the hex-decoded Confirmation Code (some test tools do).
    accept_hex_confirmation_code: bool = False
    clock: Callable[[], datetime] = _now
    # The CIs initiateAuthentication may choose a session's from (one listener of `smdp serve --config` serving
    # some of the PKI's CIs, see ServerCredentials.restricted_to); None: all of ``credentials``.  Later steps
    # use ``credentials``: a session keeps the CI it started with wherever its next call arrives.
    initiate_credentials: ServerCredentials | None = None
    trusted_cis: list[x509.Certificate] = field(init=False)

    def __post_init__(self) -> None:
        self.trusted_cis = list(self.credentials.trusted_cis)
        if self.db.sealer is None:  # the profiles this service opens are sealed with its key: writers use it too
            self.db.sealer = self.sealer

    # --- helpers ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _step(self, transaction_id: str, steps: tuple[SessionStep, ...]) -> AsyncIterator[_Call]:
        """One ES9+ call on one session, in one transaction with the session row locked.

        A failure before the eUICC's signature is verified rolls everything back: an unauthenticated request
        naming someone's transactionId can't end that session.  A failure after it (an RspError) is kept:
        the session is marked failed (unless ``keep_open``) along with what the failure changed (a
        confirmation-code counter), then re-raised after the commit.  Anything else rolls back."""
        error: RspError | None = None
        async with self.db.transaction() as db:
            row = await sessions.session_by_transaction_id(db, transaction_id, for_update=True)
            if row is None or row.step not in {s.value for s in steps} or _aware(row.expires_at) < self.clock():
                raise RspError(TRANSACTION_ID_UNKNOWN)
            call = _Call(db, row)
            try:
                yield call
            except RspError as exc:
                if not call.verified:
                    raise
                error = exc
                if not call.keep_open:
                    row.step = SessionStep.FAILED.value
                    row.status_code = _code(exc)
            touch(row, self.clock())
            await sessions.save(db, row)
        if error is not None:
            raise error

    async def expire_sessions(self) -> int:
        """Close sessions whose time ran out mid-flow (SessionStep.FAILED, status "expired"); returns how many.

        The profile is left as it is: a Downloaded profile stays bound to the eUICC that got its BPP, which may
        still install it or retry (SGP.22 3.1.3.3)."""
        open_steps = [step.value for step in lifecycle.OPEN_STEPS]
        now = self.clock()
        async with self.db.transaction() as db:
            return await sessions.expire_sessions(db, open_steps, now, step=SessionStep.FAILED.value, status_code="expired")

    async def purge_sessions(self) -> int:
        """Delete what no longer needs keeping; returns how many rows went.

        A session that never authenticated (anyone can open one with initiateAuthentication: nothing in it is
        verified) goes once its time has run out; an ended one (completed, failed, cancelled) after
        ``session_retention``, so that late notifications can still be verified for that long."""
        now = self.clock()
        ended = [SessionStep.COMPLETED.value, SessionStep.FAILED.value, SessionStep.CANCELLED.value]
        async with self.db.transaction() as db:
            unauthenticated = await sessions.delete_unauthenticated_sessions(db, now)
            old = await sessions.delete_ended_sessions(db, ended, now - self.session_retention)
        return unauthenticated + old

    # --- ES9+ functions ------------------------------------------------------------------------------

    async def initiate_authentication(self, body: dict[str, Any]) -> dict[str, Any]:
        initiated = es9.initiate_authentication(body, self.initiate_credentials or self.credentials, self.addresses)
        s = initiated.session
        now = self.clock()
        async with self.db.transaction() as db:
            await sessions.save(
                db,
                DownloadSession(
                    transaction_id=s.transaction_id,
                    step=SessionStep.INITIATED.value,
                    server_challenge=s.server_challenge,
                    smdp_address=s.smdp_address,
                    ci_pkid=s.ci_pkid,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + self.session_ttl,
                ),
            )
        return initiated.response

    async def authenticate_client(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._step(read_transaction_id(body), (SessionStep.INITIATED,)) as call:
            row = call.row
            euicc = es9.verify_authenticate_client(body, _key_values(row), self.trusted_cis, self.clock())
            call.verified = True
            row.eid = euicc.eid
            row.euicc_certificate = euicc.euicc_certificate
            row.matching_id = euicc.matching_id or None
            profile, checked = await self._select_profile(call.db, euicc)
            chain = self.credentials.chain_for(row.ci_pkid)
            assert chain is not None  # chosen by initiateAuthentication from the same credentials
            row.store_metadata = _store_metadata(profile, row, checked)
            offer = es9.authenticate_client_response(
                transaction_id=row.transaction_id,
                chain=chain,
                euicc_signature1=euicc.euicc_signature1,
                store_metadata=row.store_metadata,
                cc_required=profile.cc_hash is not None,
                bpp_euicc_otpk=profile.last_euicc_otpk if profile.eid == euicc.eid else None,
            )
            row.profile_id = profile.id
            row.order_seq = profile.order_seq
            row.smdp_signature2 = offer.smdp_signature2
            row.step = SessionStep.AUTHENTICATED.value
        return offer.response

    async def _select_profile(
        self, db: AsyncSession, euicc: es9.AuthenticatedEuicc
    ) -> tuple[Profile, ProfileMetadata]:
        """The profile this eUICC may download now (SGP.22 5.6.2 checks on the matching ID / EID), with its
        metadata, parsed once for the PPR check and the StoreMetadataRequest."""
        if euicc.matching_id:
            profile = await profiles.profile_by_matching_id(db, euicc.matching_id, for_update=True)
            if profile is None:
                raise RspError(MATCHING_ID_REFUSED, "unknown matching ID")
        else:
            # Default SM-DP+ use case: no matching ID; the EID must have a pending order (SGP.22 5.6.2).
            profile = await profiles.default_profile_for_eid(db, euicc.eid, DEFAULT_ORDER_STATES, for_update=True)
            if profile is None:
                raise RspError(EID_REFUSED, "no pending order for this EID")
        try:
            lifecycle.check_downloadable(profile, euicc.eid, self.clock())
            checked = _profile_metadata(profile)
            refused = metadata.forbidden_pprs(euicc.euicc_info2, checked)
            if refused:
                raise RspError(PPR_NOT_ALLOWED, f"the eUICC forbids {', '.join(refused)}")
        except RspError as error:
            await events.record(db, profile, es2.ELIGIBILITY_CHECK, ok=False, eid=euicc.eid, error=error)
            raise
        await events.record(db, profile, es2.ELIGIBILITY_CHECK, ok=True, eid=euicc.eid)
        return profile, checked

    async def get_bound_profile_package(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._step(read_transaction_id(body), (SessionStep.AUTHENTICATED,)) as call:
            row = call.row
            assert row.euicc_certificate is not None and row.smdp_signature2 is not None and row.eid is not None
            public_key = x509.load_der_x509_certificate(row.euicc_certificate).public_key()
            prepared = es9.verify_prepare_download(body, _key_values(row), public_key, row.smdp_signature2)  # type: ignore[arg-type]
            call.verified = True
            assert row.profile_id is not None
            profile = await profiles.profile_by_id(call.db, row.profile_id, for_update=True)
            assert profile is not None
            lifecycle.check_session_order(profile, row)
            lifecycle.check_downloadable(profile, row.eid, self.clock())
            try:
                self._check_confirmation_code(profile, prepared.hash_cc, row.transaction_id)
            except RspError as error:  # a wrong code counts even though the call fails
                # SGP.22 5.6.3: a refused code leaves the session open for another attempt, up to the limit.
                call.keep_open = error.code is CONFIRMATION_CODE_REFUSED
                touch(profile, self.clock())
                await profiles.save(call.db, profile)
                await events.record(call.db, profile, es2.CONFIRMATION_FAILURE, ok=False, eid=row.eid, error=error)
                raise
            bpp = self._bind(profile, row, prepared.euicc_otpk)
            await profiles.save(call.db, profile)
            await events.record(call.db, profile, es2.BPP_DOWNLOAD, ok=True, eid=row.eid)
        return {"transactionId": row.transaction_id, "boundProfilePackage": bpp}

    def _check_confirmation_code(self, profile: Profile, hash_cc: bytes | None, transaction_id: str) -> None:
        """hashCc = SHA256(SHA256(code) || transactionId) (SGP.22 3.1.3.2); a correct code resets the count.
        SHA256(code) is stored sealed (see smdp.crypto.cc) and opened only here."""
        if profile.cc_hash is None:
            return
        if hash_cc is None:
            raise RspError(CONFIRMATION_CODE_MISSING)
        digests = [open_confirmation_code_digest(self.sealer, profile.iccid, profile.cc_hash)]
        if self.accept_hex_confirmation_code and profile.cc_hash_hex is not None:
            digests.append(open_confirmation_code_digest(self.sealer, profile.iccid, profile.cc_hash_hex, hex_decoded=True))
        tid = bytes.fromhex(transaction_id)
        if any(hmac.compare_digest(hash_cc, confirmation_code_hash_from_digest(d, tid)) for d in digests):
            profile.cc_failures = 0
            return
        profile.cc_failures += 1
        if profile.cc_failures >= CC_MAX_FAILURES:
            raise RspError(CONFIRMATION_CODE_RETRIES_EXCEEDED)
        raise RspError(CONFIRMATION_CODE_REFUSED)

    def _bind(self, profile: Profile, row: DownloadSession, euicc_otpk: bytes) -> str:
        """Build the BPP; reuse otSK.DP if the eUICC presents the otPK of the last attempt (SGP.22 3.1.3.3)."""
        chain = self.credentials.chain_for(row.ci_pkid)
        assert chain is not None and row.eid is not None
        context = f"otsk:{profile.iccid}".encode()
        if profile.last_euicc_otpk == euicc_otpk and profile.last_smdp_otsk_sealed is not None:
            otsk = ecdsa.private_key_from_bytes(chain.curve, self.sealer.open(profile.last_smdp_otsk_sealed, context=context))
        else:
            otsk = ecdsa.generate_private_key(chain.curve)
            profile.last_euicc_otpk = euicc_otpk
            profile.last_smdp_otsk_sealed = self.sealer.seal(ecdsa.private_key_to_bytes(otsk), context=context)
        bpp = es8.build_bound_profile_package(
            transaction_id=bytes.fromhex(row.transaction_id),
            eid=es9.eid_bytes(row.eid),
            euicc_otpk=euicc_otpk,
            smdp_otsk=otsk,
            dppb_key=chain.dppb_key,
            store_metadata=row.store_metadata or _store_metadata(profile, row),
            profile=open_package(self.sealer, profile),  # the package is stored sealed; opened only here
        )
        lifecycle.deliver_bpp(profile, row)
        touch(profile, self.clock())
        row.step = SessionStep.BPP_DELIVERED.value
        return b64.b64encode(bpp.der)

    async def handle_notification(self, body: dict[str, Any]) -> None:
        """ES9+.HandleNotification (SGP.22 5.6.4): verify, record once, and let the lifecycle decide.

        A notification that fails verification changes nothing (it may not come from the eUICC).  A verified
        one is recorded (with whether it was applied, and why) and acknowledged; it changes the profile only
        as :mod:`smdp.rsp.lifecycle` allows: an installation result of the outstanding BPP of the current
        order, or enable/disable/delete from the eUICC holding the profile."""
        notification = session_end.parse_pending_notification(body)
        async with self.db.transaction() as db:
            row: DownloadSession | None = None
            if notification.kind == "profileInstallationResult":
                assert notification.transaction_id is not None
                row = await sessions.session_by_transaction_id(db, notification.transaction_id, for_update=True)
                if row is None or row.euicc_certificate is None or row.eid is None:
                    raise RspError(TRANSACTION_ID_UNKNOWN)
                key = x509.load_der_x509_certificate(row.euicc_certificate).public_key()
                session_end.verify_notification_signature(notification, key)  # type: ignore[arg-type]
                eid = row.eid
            else:
                identity = session_end.other_notification_signer(notification, self.trusted_cis, self.clock())
                session_end.verify_notification_signature(notification, identity.public_key)
                eid = identity.eid
            digest = hashlib.sha256(eid.encode() + notification.signed).hexdigest()
            if await sessions.notification_recorded(db, digest):
                log.info("notification %s seq %s from %s: a duplicate", notification.event, notification.seq_number, eid)
                return
            if row is not None:
                decision = await self._installation_result(db, row, bool(notification.success), body["pendingNotification"])
            else:
                decision = await self._management_event(db, notification, eid)
            await sessions.record_notification(
                db,
                Notification(
                    digest=digest,
                    eid=eid,
                    seq_number=notification.seq_number,
                    event=notification.event,
                    iccid=notification.iccid,
                    transaction_id=notification.transaction_id,
                    success=notification.success,
                    detail=notification.detail,
                    der=b64.b64decode(body["pendingNotification"]),  # as received: verifiable again
                    applied=decision.applied,
                    disposition=decision.reason[:255],
                    received_at=self.clock(),
                ),
            )
        log.info(
            "notification %s seq %s from %s: %s", notification.event, notification.seq_number, eid,
            decision.reason if decision.applied else f"recorded only ({decision.reason})",
        )

    async def _installation_result(
        self, db: AsyncSession, row: DownloadSession, success: bool, pir: str
    ) -> lifecycle.Decision:
        profile = await profiles.profile_by_id(db, row.profile_id, for_update=True) if row.profile_id else None
        if profile is None:
            decision = lifecycle.Decision(False, "the session never named a profile")
        else:
            decision = lifecycle.installation_result(profile, row, success=success)
        if row.step == SessionStep.BPP_DELIVERED.value:  # what happened to this session's BPP, either way
            row.step = SessionStep.COMPLETED.value if success else SessionStep.FAILED.value
            row.status_code = None if success else "installation failed"
            touch(row, self.clock())
            await sessions.save(db, row)
        if profile is not None and decision.applied:
            if success:  # no retry any more: drop the one-time key material
                profile.last_euicc_otpk = profile.last_smdp_otsk_sealed = None
            touch(profile, self.clock())
            await profiles.save(db, profile)
            await events.record(db, profile, es2.BPP_INSTALLATION, ok=success, eid=row.eid, result_data=pir)
        return decision

    async def _management_event(
        self, db: AsyncSession, notification: session_end.PendingNotification, eid: str
    ) -> lifecycle.Decision:
        profile = await profiles.profile_by_iccid(db, notification.iccid, for_update=True) if notification.iccid else None
        if profile is None:
            return lifecycle.Decision(False, "no such profile here")
        decision = lifecycle.profile_management_event(profile, eid, notification.event)
        if decision.applied:
            touch(profile, self.clock())
            await profiles.save(db, profile)
            await events.record(db, profile, es2.OTHER_EVENTS[notification.event], ok=True, eid=eid)
        return decision

    async def cancel_session(self, body: dict[str, Any]) -> dict[str, Any]:
        """ES9+.CancelSession (SGP.22 5.6.5); a refused cancel (bad signature, wrong OID) changes nothing."""
        transaction_id = read_transaction_id(body)
        live = (SessionStep.AUTHENTICATED.value, SessionStep.BPP_DELIVERED.value)
        async with self.db.transaction() as db:
            row = await sessions.session_by_transaction_id(db, transaction_id, for_update=True)
            if row is None or row.step not in live or row.euicc_certificate is None or _aware(row.expires_at) < self.clock():
                raise RspError(TRANSACTION_ID_UNKNOWN)
            key = x509.load_der_x509_certificate(row.euicc_certificate).public_key()
            reason = session_end.verify_cancel_session(body, _key_values(row), key, self.credentials.smdp_oid)  # type: ignore[arg-type]
            profile = await profiles.profile_by_id(db, row.profile_id, for_update=True) if row.profile_id else None
            if profile is not None and lifecycle.cancel_download(profile, row):  # the order is available again
                touch(profile, self.clock())
                await profiles.save(db, profile)
            row.step = SessionStep.CANCELLED.value
            row.status_code = f"cancelled:{reason}"
            touch(row, self.clock())
            await sessions.save(db, row)
            if profile is not None and row.order_seq == profile.order_seq:
                await events.record(db, profile, es2.SESSION_CANCELLED, ok=True, eid=row.eid)
        return {}
