"""Database tables (sqlmodel): profiles, download sessions, notifications.

Profiles hold the DER of the unprotected profile package, encoded once at import time.  Download
sessions live here, not in process memory (SGP.22 section 3.1.3: any worker answers any step);
one-time private keys are stored sealed (see :mod:`smdp.crypto.sealed`), never in clear.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from sqlalchemy import Column, LargeBinary
from sqlmodel import JSON, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ProfileState(str, Enum):
    """Profile states of SGP.22 section 3.3 (ES2+ lifecycle); the ES9+ core uses a subset."""

    AVAILABLE = "Available"
    ALLOCATED = "Allocated"
    LINKED = "Linked"
    CONFIRMED = "Confirmed"
    RELEASED = "Released"
    DOWNLOADED = "Downloaded"
    INSTALLED = "Installed"
    ERROR = "Error"
    UNAVAILABLE = "Unavailable"


class Profile(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    iccid: str = Field(index=True, unique=True, max_length=20)
    # NULL matching ID + bound EID = the eUICC's default SM-DP+ order (SGP.22 section 3.1.1.4).
    matching_id: str | None = Field(default=None, index=True, unique=True, max_length=255)
    eid: str | None = Field(default=None, index=True, max_length=32)
    state: str = Field(default=ProfileState.RELEASED.value, index=True, max_length=16)
    # ES2+: the operator owning the profile, and the profile type it was made from (if any).
    operator_id: int | None = Field(default=None, foreign_key="operator.id", index=True)
    profile_type: str | None = Field(default=None, index=True, max_length=64)
    smds_address: str | None = Field(default=None, max_length=255)
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # StoreMetadataRequest content (service provider name, profile name, class, PPRs, ...).
    profile_metadata: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # SHA-256(confirmation code): all the server needs to check hashCc (SGP.22 section 3.1.3.2 / 5.6.3).
    cc_hash: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    cc_failures: int = 0
    reusable: bool = False
    download_attempts: int = 0
    max_download_attempts: int | None = None
    expires_at: datetime | None = None
    # Download retry (SGP.22 section 3.1.3.3): the eUICC's otPK and our sealed otSK of the last BPP.
    last_euicc_otpk: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    last_smdp_otsk_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SessionStep(str, Enum):
    INITIATED = "initiated"  # after initiateAuthentication
    AUTHENTICATED = "authenticated"  # after authenticateClient
    BPP_DELIVERED = "bpp-delivered"  # after getBoundProfilePackage
    COMPLETED = "completed"  # install notification received
    CANCELLED = "cancelled"
    FAILED = "failed"


class DownloadSession(SQLModel, table=True):
    __tablename__ = "download_session"

    transaction_id: str = Field(primary_key=True, max_length=32)  # hex, 16 bytes
    step: str = Field(default=SessionStep.INITIATED.value, index=True, max_length=16)
    server_challenge: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    smdp_address: str = Field(max_length=255)
    ci_pkid: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    eid: str | None = Field(default=None, index=True, max_length=32)
    euicc_certificate: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    profile_id: int | None = Field(default=None, foreign_key="profile.id", index=True)
    # ctxParamsForCommonAuthentication carried a matching ID: the default SM-DP+ flow has none.
    matching_id: str | None = Field(default=None, max_length=255)
    smdp_signature2: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # the StoreMetadataRequest sent as profileMetadata: the BPP's '88' segments must carry the same bytes
    store_metadata: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    status_code: str | None = Field(default=None, max_length=32)  # subject/reason of a failure
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(default_factory=utcnow, index=True)


class Notification(SQLModel, table=True):
    """A verified pending notification (SGP.22 section 5.6.4), recorded once.

    A retried delivery carries the same signed bytes, so the digest of those bytes identifies it
    (not the sequence number alone: two eUICC states may share an EID, as the SGP.26 set does)."""

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(index=True, unique=True, max_length=64)  # SHA-256 of the signed data, hex
    eid: str = Field(index=True, max_length=32)
    seq_number: int
    event: str = Field(max_length=32)  # install, enable, disable, delete
    iccid: str | None = Field(default=None, index=True, max_length=20)
    transaction_id: str | None = Field(default=None, index=True, max_length=32)
    success: bool | None = None
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
