"""The download session service: loads and saves ES9+ state around the sans-IO protocol core.

Each ES9+ call is one database transaction: the session row is locked (PostgreSQL) or the single SQLite
writer held, its step checked, the request verified, and the new state written, so that a replayed or
concurrent call can't advance a session twice and no profile is handed out twice.  Progress events for
operators are queued in the same transaction (see smdp.services.events).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.codec import b64
from smdp.crypto import ecdsa
from smdp.crypto.cc import confirmation_code_hash_from_digest
from smdp.crypto.sealed import Sealer
from smdp.pki.store import ServerCredentials
from smdp.rsp import es2, es8, es9, metadata, session_end
from smdp.rsp.fields import transaction_id as read_transaction_id
from smdp.rsp.status import (
    CONFIRMATION_CODE_MISSING,
    CONFIRMATION_CODE_REFUSED,
    CONFIRMATION_CODE_RETRIES_EXCEEDED,
    DOWNLOAD_ORDER_EXPIRED,
    EID_REFUSED,
    MATCHING_ID_REFUSED,
    MAX_RETRIES_EXCEEDED,
    PPR_NOT_ALLOWED,
    PROFILE_NOT_RELEASED,
    TRANSACTION_ID_UNKNOWN,
    RspError,
)
from smdp.services import events
from smdp.store import repo
from smdp.store.db import Database
from smdp.store.tables import DownloadSession, Notification, Profile, ProfileState, SessionStep

log = logging.getLogger(__name__)

CC_MAX_FAILURES = 3
DOWNLOADABLE = [ProfileState.RELEASED.value]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _store_metadata(profile: Profile, row: DownloadSession) -> bytes:
    """StoreMetadataRequest; unless the profile says otherwise, enable/disable/delete notifications come here."""
    values = dict(profile.profile_metadata)
    values.setdefault(
        "notificationConfigurationInfo",
        [{"events": ["enable", "disable", "delete"], "address": row.smdp_address}],
    )
    return metadata.store_metadata_request(profile.iccid, values)


def _key_values(row: DownloadSession) -> es9.SessionKeyValues:
    return es9.SessionKeyValues(row.transaction_id, row.server_challenge, row.smdp_address, row.ci_pkid)


@dataclass
class DownloadService:
    db: Database
    credentials: ServerCredentials
    sealer: Sealer
    addresses: frozenset[str]
    session_ttl: timedelta = timedelta(minutes=10)
    trusted_cis: list[x509.Certificate] = field(init=False)

    def __post_init__(self) -> None:
        self.trusted_cis = list(self.credentials.trusted_cis)

    # --- helpers ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _step(
        self, transaction_id: str, steps: tuple[SessionStep, ...]
    ) -> AsyncIterator[tuple[AsyncSession, DownloadSession]]:
        """One ES9+ call on one session, in one transaction with the session row locked.

        An RspError raised inside marks the session failed and is re-raised after the commit, so that
        what the failure changed (the session, a confirmation-code counter) is kept; anything else
        rolls back."""
        error: RspError | None = None
        async with self.db.transaction() as db:
            row = await repo.session_by_transaction_id(db, transaction_id, for_update=True)
            if row is None or row.step not in {s.value for s in steps} or _aware(row.expires_at) < _now():
                raise RspError(TRANSACTION_ID_UNKNOWN)
            try:
                yield db, row
            except RspError as exc:
                error = exc
                row.step = SessionStep.FAILED.value
                row.status_code = f"{exc.code.subject_code}/{exc.code.reason_code}"
            repo.touch(row)
            await repo.save(db, row)
        if error is not None:
            raise error

    async def expire_sessions(self) -> int:
        """Close sessions whose time ran out mid-flow (SessionStep.FAILED, status "expired"); returns how many."""
        open_steps = [SessionStep.INITIATED.value, SessionStep.AUTHENTICATED.value, SessionStep.BPP_DELIVERED.value]
        async with self.db.transaction() as db:
            result = await db.exec(
                update(DownloadSession)
                .where(DownloadSession.step.in_(open_steps), DownloadSession.expires_at < _now())  # type: ignore[attr-defined]
                .values(step=SessionStep.FAILED.value, status_code="expired", updated_at=_now())
            )
        return int(result.rowcount or 0)

    # --- ES9+ functions ------------------------------------------------------------------------------

    async def initiate_authentication(self, body: dict[str, Any]) -> dict[str, Any]:
        initiated = es9.initiate_authentication(body, self.credentials, self.addresses)
        s = initiated.session
        now = _now()
        async with self.db.transaction() as db:
            await repo.save(
                db,
                DownloadSession(
                    transaction_id=s.transaction_id,
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
        async with self._step(read_transaction_id(body), (SessionStep.INITIATED,)) as (db, row):
            euicc = es9.verify_authenticate_client(body, _key_values(row), self.trusted_cis, _now())
            profile = await self._select_profile(db, euicc)
            chain = self.credentials.chain_for(row.ci_pkid)
            assert chain is not None  # chosen by initiateAuthentication from the same credentials
            row.store_metadata = _store_metadata(profile, row)
            offer = es9.authenticate_client_response(
                transaction_id=row.transaction_id,
                chain=chain,
                euicc_signature1=euicc.euicc_signature1,
                store_metadata=row.store_metadata,
                cc_required=profile.cc_hash is not None,
                bpp_euicc_otpk=profile.last_euicc_otpk if profile.eid == euicc.eid else None,
            )
            row.eid = euicc.eid
            row.euicc_certificate = euicc.euicc_certificate
            row.profile_id = profile.id
            row.matching_id = euicc.matching_id or None
            row.smdp_signature2 = offer.smdp_signature2
            row.step = SessionStep.AUTHENTICATED.value
        return offer.response

    async def _select_profile(self, db: Any, euicc: es9.AuthenticatedEuicc) -> Profile:
        """The profile this eUICC may download now (SGP.22 5.6.2 steps on the matching ID / EID)."""
        if euicc.matching_id:
            profile = await repo.profile_by_matching_id(db, euicc.matching_id, for_update=True)
            if profile is None:
                raise RspError(MATCHING_ID_REFUSED, "unknown matching ID")
        else:
            states = DOWNLOADABLE + [ProfileState.DOWNLOADED.value]
            profile = await repo.default_profile_for_eid(db, euicc.eid, states, for_update=True)
            if profile is None:
                raise RspError(MATCHING_ID_REFUSED, "no pending order for this EID")
        try:
            if profile.eid is not None and profile.eid != euicc.eid:
                raise RspError(EID_REFUSED)
            self._check_downloadable(profile, euicc.eid)
            refused = metadata.forbidden_pprs(euicc.euicc_info2, profile.profile_metadata)
            if refused:
                raise RspError(PPR_NOT_ALLOWED, f"the eUICC forbids {', '.join(refused)}")
        except RspError as error:
            await events.record(db, profile, es2.ELIGIBILITY_CHECK, ok=False, eid=euicc.eid, error=error)
            raise
        await events.record(db, profile, es2.ELIGIBILITY_CHECK, ok=True, eid=euicc.eid)
        return profile

    @staticmethod
    def _check_downloadable(profile: Profile, eid: str) -> None:
        if profile.expires_at is not None and _aware(profile.expires_at) < _now():
            raise RspError(DOWNLOAD_ORDER_EXPIRED)
        if profile.max_download_attempts is not None and profile.download_attempts >= profile.max_download_attempts:
            raise RspError(MAX_RETRIES_EXCEEDED)
        if profile.cc_hash is not None and profile.cc_failures >= CC_MAX_FAILURES:
            raise RspError(CONFIRMATION_CODE_RETRIES_EXCEEDED)
        if profile.reusable:
            return
        retry = profile.state == ProfileState.DOWNLOADED.value and profile.eid == eid
        if profile.state not in DOWNLOADABLE and not retry:
            raise RspError(PROFILE_NOT_RELEASED, f"profile is {profile.state}")

    async def get_bound_profile_package(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._step(read_transaction_id(body), (SessionStep.AUTHENTICATED,)) as (db, row):
            assert row.euicc_certificate is not None and row.smdp_signature2 is not None and row.eid is not None
            public_key = x509.load_der_x509_certificate(row.euicc_certificate).public_key()
            prepared = es9.verify_prepare_download(body, _key_values(row), public_key, row.smdp_signature2)  # type: ignore[arg-type]
            assert row.profile_id is not None
            profile = await repo.profile_by_id(db, row.profile_id, for_update=True)
            assert profile is not None
            try:
                self._check_confirmation_code(profile, prepared.hash_cc, row.transaction_id)
            except RspError as error:  # a wrong code counts even though the call fails
                await repo.save(db, profile)
                await events.record(db, profile, es2.CONFIRMATION_FAILURE, ok=False, eid=row.eid, error=error)
                raise
            self._check_downloadable(profile, row.eid)
            bpp = self._bind(profile, row, prepared.euicc_otpk)
            await repo.save(db, profile)
            await events.record(db, profile, es2.BPP_DOWNLOAD, ok=True, eid=row.eid)
        return {"transactionId": row.transaction_id, "boundProfilePackage": bpp}

    @staticmethod
    def _check_confirmation_code(profile: Profile, hash_cc: bytes | None, transaction_id: str) -> None:
        if profile.cc_hash is None:
            return
        if hash_cc is None:
            raise RspError(CONFIRMATION_CODE_MISSING)
        if hash_cc != confirmation_code_hash_from_digest(profile.cc_hash, bytes.fromhex(transaction_id)):
            profile.cc_failures += 1
            repo.touch(profile)
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
            profile=profile.der,
        )
        if not profile.reusable:
            profile.state = ProfileState.DOWNLOADED.value
            profile.eid = row.eid
        profile.download_attempts += 1
        repo.touch(profile)
        row.step = SessionStep.BPP_DELIVERED.value
        repo.touch(row)
        return b64.b64encode(bpp.der)

    async def handle_notification(self, body: dict[str, Any]) -> None:
        """Verify and record a notification; an installation result also settles its session and profile.

        A notification that fails verification changes nothing (it may not come from the eUICC)."""
        notification = session_end.parse_pending_notification(body)
        async with self.db.transaction() as db:
            row = None
            if notification.kind == "profileInstallationResult":
                assert notification.transaction_id is not None
                row = await repo.session_by_transaction_id(db, notification.transaction_id, for_update=True)
                if row is None or row.euicc_certificate is None or row.eid is None:
                    raise RspError(TRANSACTION_ID_UNKNOWN)
                key = x509.load_der_x509_certificate(row.euicc_certificate).public_key()
                session_end.verify_notification_signature(notification, key)  # type: ignore[arg-type]
                eid = row.eid
            else:
                identity = session_end.other_notification_signer(notification, self.trusted_cis, _now())
                session_end.verify_notification_signature(notification, identity.public_key)
                eid = identity.eid
            fresh = await repo.record_notification(
                db,
                Notification(
                    digest=hashlib.sha256(notification.signed + notification.signature).hexdigest(),
                    eid=eid,
                    seq_number=notification.seq_number,
                    event=notification.event,
                    iccid=notification.iccid,
                    transaction_id=notification.transaction_id,
                    success=notification.success,
                    detail=notification.detail,
                    der=notification.signed,
                ),
            )
            if fresh and row is not None:
                await self._installation_result(db, row, bool(notification.success), body["pendingNotification"])
            elif fresh and notification.iccid and notification.event in es2.OTHER_EVENTS:
                profile = await repo.profile_by_iccid(db, notification.iccid)
                if profile is not None:
                    await events.record(db, profile, es2.OTHER_EVENTS[notification.event], ok=True, eid=eid)
        log.info("notification %s seq %s from %s recorded=%s", notification.event, notification.seq_number, eid, fresh)

    async def _installation_result(self, db: AsyncSession, row: DownloadSession, success: bool, pir: str) -> None:
        row.step = SessionStep.COMPLETED.value if success else SessionStep.FAILED.value
        repo.touch(row)
        await repo.save(db, row)
        profile = await repo.profile_by_id(db, row.profile_id, for_update=True) if row.profile_id else None
        if profile is None:
            return
        if success:  # no retry any more: drop the one-time key material
            profile.last_euicc_otpk = profile.last_smdp_otsk_sealed = None
        if not profile.reusable:
            # A failed installation leaves the order downloadable again by the same eUICC (download retry).
            profile.state = ProfileState.INSTALLED.value if success else ProfileState.RELEASED.value
        repo.touch(profile)
        await repo.save(db, profile)
        await events.record(db, profile, es2.BPP_INSTALLATION, ok=success, eid=row.eid, result_data=pir)

    async def cancel_session(self, body: dict[str, Any]) -> dict[str, Any]:
        """ES9+.CancelSession; a refused cancel (bad signature, wrong OID) changes nothing."""
        transaction_id = read_transaction_id(body)
        live = (SessionStep.AUTHENTICATED.value, SessionStep.BPP_DELIVERED.value)
        async with self.db.transaction() as db:
            row = await repo.session_by_transaction_id(db, transaction_id, for_update=True)
            if row is None or row.step not in live or row.euicc_certificate is None or _aware(row.expires_at) < _now():
                raise RspError(TRANSACTION_ID_UNKNOWN)
            key = x509.load_der_x509_certificate(row.euicc_certificate).public_key()
            reason = session_end.verify_cancel_session(body, _key_values(row), key, self.credentials.smdp_oid)  # type: ignore[arg-type]
            delivered = row.step == SessionStep.BPP_DELIVERED.value
            row.step = SessionStep.CANCELLED.value
            row.status_code = f"cancelled:{reason}"
            repo.touch(row)
            await repo.save(db, row)
            profile = await repo.profile_by_id(db, row.profile_id, for_update=True) if row.profile_id else None
            if delivered and profile is not None and profile.state == ProfileState.DOWNLOADED.value:
                profile.state = ProfileState.RELEASED.value  # SGP.22 5.6.5: the order is available again
                repo.touch(profile)
                await repo.save(db, profile)
            if profile is not None:
                await events.record(db, profile, es2.SESSION_CANCELLED, ok=True, eid=row.eid)
        return {}
