"""Database tables (sqlmodel): every table smdp has, and nothing else (the queries are in the other modules
of :mod:`smdp.store`).  Schema changes reach existing databases through the migrations
(smdp.store.migrations, ``smdp db upgrade``): a column changed here needs a revision there.

Profiles hold the DER of the unprotected profile package (with the subscriber's Ki and OPc), encoded once at
import time and stored sealed with the master key (see :mod:`smdp.crypto.sealed`).  Download sessions live
here, not in process memory (SGP.22 section 3.1.3: any worker answers any step); one-time private keys and
confirmation-code digests are stored sealed too, never in clear.

A profile type is what an operator defines once: a SAIP template package, the StoreMetadataRequest defaults
of its profiles (smdp.rsp.metadata JSON form), an optional travel policy document (smdp.profiles.policy) and
the AKA algorithm choice.  Generated profiles point back to it by name (``Profile.profile_type``), which is
also what ES2+ orders name as profileType.

Operators (ES2+, SGP.22 section 5.3) authenticate with API tokens; only a SHA-256 of each token is stored.
Download progress events for operators are written to the outbox in the same transaction as the state change
that caused them (a transactional outbox), and delivered by :mod:`smdp.services.outbox` with retries.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import JSON, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def touch(row: Profile | DownloadSession, now: datetime | None = None) -> None:
    """Record a change of ``row`` (its ``updated_at``); the row is written by the next save or flush."""
    row.updated_at = now or utcnow()


class Profile(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    iccid: str = Field(index=True, unique=True, max_length=20)
    # NULL matching ID + bound EID = the eUICC's default SM-DP+ order (SGP.22 section 3.1.1.4).
    matching_id: str | None = Field(default=None, index=True, unique=True, max_length=255)
    # The eUICC the profile is bound to: the order's EID, or the eUICC that received its BPP.
    eid: str | None = Field(default=None, index=True, max_length=32)
    # The states, their transitions and the columns below are smdp.rsp.lifecycle's: only it assigns them.
    state: str = Field(index=True, max_length=16)
    order_eid: str | None = Field(default=None, max_length=32)  # the EID named by the operator's order
    order_seq: int = 0  # order generation: CancelOrder starts a new one
    bpp_transaction_id: str | None = Field(default=None, max_length=32)  # the session whose BPP is outstanding
    euicc_state: str | None = Field(default=None, max_length=16)  # enabled/disabled/deleted, as its eUICC reported
    # ES2+: the operator owning the profile, and the profile type it was made from (if any).
    operator_id: int | None = Field(default=None, foreign_key="operator.id", index=True)
    profile_type: str | None = Field(default=None, index=True, max_length=64)
    smds_address: str | None = Field(default=None, max_length=255)
    # The unprotected profile package, sealed (context b"profile:" + ICCID; smdp.services.profiles.seal_package):
    # opened only to build a BPP.
    package_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # StoreMetadataRequest content (service provider name, profile name, class, PPRs, ...).
    profile_metadata: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # SHA-256(confirmation code), sealed: all the server needs to check hashCc (SGP.22 section 3.1.3.2 / 5.6.3;
    # see smdp.crypto.cc).  NULL: no code required.
    cc_hash: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # SHA-256 of the hex-decoded code, sealed, for test tools that hash it that way (accepted behind a lab option).
    cc_hash_hex: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
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


class DownloadSession(SQLModel, table=True):
    __tablename__ = "download_session"

    transaction_id: str = Field(primary_key=True, max_length=32)  # hex, 16 bytes
    step: str = Field(index=True, max_length=16)  # a smdp.rsp.lifecycle.SessionStep
    server_challenge: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    smdp_address: str = Field(max_length=255)
    ci_pkid: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    eid: str | None = Field(default=None, index=True, max_length=32)
    euicc_certificate: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    profile_id: int | None = Field(default=None, foreign_key="profile.id", index=True)
    order_seq: int | None = None  # the profile's order generation this session authenticated for
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
    """A verified pending notification (SGP.22 section 5.6.4), recorded once, whether or not it changed anything.

    A retried delivery carries the same signed bytes, perhaps signed anew (ECDSA signatures differ each time),
    so the digest of the sender's EID and the signed bytes identifies it; ``der`` keeps the whole
    notification as received, so that it can be verified again.  ``applied`` says whether it changed the
    profile and ``disposition`` why (see smdp.rsp.lifecycle)."""

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(index=True, unique=True, max_length=64)  # SHA-256(EID || signed data), hex
    eid: str = Field(index=True, max_length=32)
    seq_number: int
    event: str = Field(max_length=32)  # install, enable, disable, delete
    iccid: str | None = Field(default=None, index=True, max_length=20)
    transaction_id: str | None = Field(default=None, index=True, max_length=32)
    success: bool | None = None
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    applied: bool = False
    disposition: str | None = Field(default=None, max_length=255)
    received_at: datetime = Field(default_factory=utcnow)


class ProfileType(SQLModel, table=True):
    __tablename__ = "profile_type"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    template_der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    profile_metadata: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    policy: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    algorithm: str = Field(default="milenage", max_length=16)  # milenage | template
    # lifecycle defaults of its profiles (ES2+ orders, ES9+ downloads)
    reusable: bool = False  # R&D: downloadable any number of times
    max_download_attempts: int | None = None
    order_validity_days: int | None = None  # an order placed for a profile of this type expires after
    created_at: datetime = Field(default_factory=utcnow)


class Operator(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)  # the ES2+ functionRequesterIdentifier
    token_sha256: str = Field(index=True, unique=True, max_length=64)
    callback_url: str | None = Field(default=None, max_length=1024)  # base URL of its ES2+ endpoint
    # PEM CA certificate(s) trusted for the callback endpoint, besides the system trust store
    callback_ca: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class OutboxEvent(SQLModel, table=True):
    """A progress event for an operator: *pending* (``delivered_at`` and ``dead_at`` unset), *delivered*, or
    *dead* (given up after the retry limit; ``smdp outbox retry`` makes it pending again)."""

    __tablename__ = "outbox_event"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True, unique=True, max_length=36)  # sent as functionCallIdentifier
    operator_id: int = Field(foreign_key="operator.id", index=True)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = Field(default=None, index=True)
    last_error: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    dead_at: datetime | None = Field(default=None, index=True)  # given up: no more attempts until retried
    retried_at: datetime | None = Field(default=None)  # last manual retry (restarts the age limit)
