"""ES2+ order functions (SGP.22 5.3.1-5.3.4) over the database: DownloadOrder, ConfirmOrder, CancelOrder,
ReleaseProfile.  Every change happens in one transaction with the profile row locked; an operator sees
and changes only its own profiles (another operator's ICCID is "unknown")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.crypto.cc import seal_confirmation_code
from smdp.rsp import es2, lifecycle
from smdp.rsp.activation import new_matching_id
from smdp.rsp.lifecycle import ProfileState as S
from smdp.rsp.status import (
    CONDITIONAL_INPUT_MISSING,
    EID_MISMATCH,
    EID_MISSING,
    ICCID_ALREADY_RESERVED,
    ICCID_UNKNOWN,
    INVALID_INPUT,
    MATCHING_ID_IN_USE,
    MATCHING_ID_MISMATCH,
    PROFILE_TYPE_EXHAUSTED,
    PROFILE_TYPE_UNKNOWN,
    RspError,
)
from smdp.services.profiles import database_sealer
from smdp.store import profiles
from smdp.store.db import Database
from smdp.store.tables import Operator, Profile, touch

DEFAULT_ORDER_VALIDITY = timedelta(days=30)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OrderService:
    db: Database
    smdp_address: str
    order_validity: timedelta = DEFAULT_ORDER_VALIDITY

    async def _own_profile(self, db: AsyncSession, operator: Operator, iccid: str) -> Profile:
        profile = await profiles.operator_profile_by_iccid(db, operator.id, iccid, for_update=True)
        if profile is None:
            raise RspError(ICCID_UNKNOWN, f"no profile {iccid}")
        return profile

    async def download_order(self, body: dict[str, Any], operator: Operator) -> dict[str, Any]:
        """DownloadOrder (5.3.1): reserve a profile, by ICCID or by profile type, optionally for an EID."""
        eid = es2.eid(body)
        iccid = es2.iccid(body, required=False)
        profile_type = es2.optional_str(body, "profileType", 64)
        if iccid is None and not profile_type:
            raise RspError(CONDITIONAL_INPUT_MISSING, "iccid or profileType is needed")
        async with self.db.transaction() as db:
            if iccid is not None:
                profile = await self._own_profile(db, operator, iccid)
                if profile.state != S.AVAILABLE.value:
                    raise RspError(ICCID_ALREADY_RESERVED, f"profile {iccid} is {profile.state}")
                if profile_type and profile.profile_type != profile_type:
                    raise RspError(PROFILE_TYPE_UNKNOWN, f"profile {iccid} is not of type {profile_type}")
            else:
                profile = await self._available_of_type(db, operator, str(profile_type))
            lifecycle.start_order(profile, eid)
            touch(profile)
            profile.expires_at = _now() + await self._validity(db, profile)
            await profiles.save(db, profile)
        return {"iccid": profile.iccid}

    async def _validity(self, db: AsyncSession, profile: Profile) -> timedelta:
        """The order validity: the profile type's if it sets one, else the server's default."""
        if profile.profile_type:
            profile_type = await profiles.profile_type_by_name(db, profile.profile_type)
            if profile_type is not None and profile_type.order_validity_days:
                return timedelta(days=profile_type.order_validity_days)
        return self.order_validity

    async def _available_of_type(self, db: AsyncSession, operator: Operator, profile_type: str) -> Profile:
        profile = await profiles.first_profile_of_type(db, operator.id, profile_type, S.AVAILABLE.value)
        if profile is not None:
            return profile
        if not await profiles.has_profile_of_type(db, operator.id, profile_type):
            raise RspError(PROFILE_TYPE_UNKNOWN, f"no profile type {profile_type!r}")
        raise RspError(PROFILE_TYPE_EXHAUSTED, f"no available profile of type {profile_type!r}")

    async def confirm_order(self, body: dict[str, Any], operator: Operator) -> dict[str, Any]:
        """ConfirmOrder (5.3.2): matching ID (given; generated when omitted; "" for the default SM-DP+ use case,
        which needs an EID), confirmation code, release flag."""
        iccid = str(es2.iccid(body))
        eid = es2.eid(body)
        matching_id = es2.matching_id(body)
        code = es2.optional_str(body, "confirmationCode", 64)
        if code == "":
            raise RspError(INVALID_INPUT, "confirmationCode is empty")
        smds = es2.smds_address(body)
        release = es2.required_bool(body, "releaseFlag")
        async with self.db.transaction() as db:
            profile = await self._own_profile(db, operator, iccid)
            lifecycle.check_transition(profile.state, S.CONFIRMED)
            if eid and profile.order_eid and eid != profile.order_eid:
                raise RspError(EID_MISMATCH)
            eid = eid or profile.order_eid
            if matching_id == "" and eid is None:
                raise RspError(EID_MISSING, "an empty matchingId (default SM-DP+ use case) needs the EID")
            if matching_id is None:
                matching_id = new_matching_id()
            if matching_id and await profiles.profile_by_matching_id(db, matching_id) is not None:
                raise RspError(MATCHING_ID_IN_USE, f"matching ID {matching_id} is in use")
            profile.matching_id, profile.smds_address = matching_id or None, smds
            profile.cc_hash, profile.cc_hash_hex = seal_confirmation_code(database_sealer(self.db), profile.iccid, code)
            lifecycle.confirm_order(profile, eid, release=release)
            touch(profile)
            await profiles.save(db, profile)
        answer: dict[str, Any] = {"smdpAddress": self.smdp_address}
        if eid:
            answer["eid"] = eid
        if matching_id:
            answer["matchingId"] = matching_id
        return answer

    async def cancel_order(self, body: dict[str, Any], operator: Operator) -> dict[str, Any]:
        """CancelOrder (5.3.3): back to Available or Unavailable.  An order made for an EID is cancelled by
        naming that EID; a matching ID, if given, must be the order's."""
        iccid = str(es2.iccid(body))
        eid = es2.eid(body)
        matching_id = es2.matching_id(body)
        final = es2.final_status(body)
        async with self.db.transaction() as db:
            profile = await self._own_profile(db, operator, iccid)
            if profile.order_eid and eid is None:
                raise RspError(EID_MISSING, "this order was made for an EID: CancelOrder must name it")
            if eid and eid != profile.order_eid:
                raise RspError(EID_MISMATCH)
            if matching_id and matching_id != profile.matching_id:
                raise RspError(MATCHING_ID_MISMATCH)
            lifecycle.end_order(profile, final)
            profile.matching_id = profile.cc_hash = profile.cc_hash_hex = profile.smds_address = None
            profile.last_euicc_otpk = profile.last_smdp_otsk_sealed = None
            touch(profile)
            await profiles.save(db, profile)
        return {}

    async def release_profile(self, body: dict[str, Any], operator: Operator) -> dict[str, Any]:
        """ReleaseProfile (5.3.4): a Confirmed order becomes downloadable."""
        iccid = str(es2.iccid(body))
        async with self.db.transaction() as db:
            profile = await self._own_profile(db, operator, iccid)
            lifecycle.release(profile)
            touch(profile)
            await profiles.save(db, profile)
        return {}
