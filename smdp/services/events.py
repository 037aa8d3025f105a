"""Download progress events for operators (ES2+.HandleDownloadProgressInfo, SGP.22 5.3.5).

An event is written to the outbox in the caller's transaction, so it exists exactly when the state
change that caused it was committed; :mod:`smdp.services.outbox` delivers it later.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from smdp.rsp import es2
from smdp.rsp.status import RspError
from smdp.store import operators, outbox
from smdp.store.tables import OutboxEvent, Profile

REQUESTER = "smdp"  # our functionRequesterIdentifier towards operators


async def record(
    db: AsyncSession,
    profile: Profile,
    point: int,
    *,
    ok: bool,
    eid: str | None = None,
    error: RspError | None = None,
    result_data: str | None = None,
) -> None:
    """Queue a progress event for the profile's operator, if it has a notification endpoint."""
    if profile.operator_id is None:
        return
    operator = await operators.operator_by_id(db, profile.operator_id)
    if operator is None or not operator.callback_url:
        return
    code = (error.code.subject_code, error.code.reason_code, error.message) if error is not None else None
    payload = es2.progress_payload(
        requester=REQUESTER,
        function_call_id=str(uuid.uuid4()),
        iccid=profile.iccid,
        profile_type=profile.profile_type,
        eid=eid or profile.eid,
        point=point,
        ok=ok,
        timestamp=datetime.now(UTC),
        code=code,
        result_data=result_data,
    )
    event = OutboxEvent(
        event_id=payload["header"]["functionCallIdentifier"], operator_id=operator.id, payload=payload  # type: ignore[arg-type]
    )
    await outbox.add_event(db, event)
