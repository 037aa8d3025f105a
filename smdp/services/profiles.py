"""Profile import (SGP.22 unprotected profile packages), listing, export and deletion, for the CLI and the
server's first start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from smdp.crypto.cc import seal_confirmation_code
from smdp.crypto.sealed import Sealer
from smdp.pki.eid import is_valid_eid
from smdp.profiles.metadata import MetadataError, ProfileMetadata
from smdp.profiles.saip import SaipError, validate_profile_package
from smdp.profiles.stamp import stamp_iccid
from smdp.rsp.activation import new_matching_id
from smdp.rsp.lifecycle import ProfileState, initial_state
from smdp.store import profiles as store
from smdp.store import sessions as session_store
from smdp.store.db import Database
from smdp.store.tables import Profile


class ProfileImportError(ValueError):
    """The profile can't be imported; the message says why."""


class ProfileError(ValueError):
    """A stored profile can't be exported or deleted (unknown ICCID, ...); the message says why."""


class ProfileBusyError(ProfileError):
    """``delete_profile`` without ``force`` on a profile with an order or a download in progress."""

    def __init__(self, iccid: str, state: str) -> None:
        super().__init__(f"profile {iccid} is {state}: {BUSY_STATES[state]}; pass --force to delete it anyway")
        self.iccid, self.profile_state = iccid, state


S = ProfileState

#: The states in which deleting a profile would pull it from under someone, so ``delete_profile`` refuses
#: without ``force``: an ES2+ order is open (Allocated, Linked, Confirmed), the order is downloadable
#: (Released: whoever holds its activation code may start a download at any moment, and an imported
#: profile starts here), or a Bound Profile Package is out and its installation result outstanding
#: (Downloaded).  Deleting is allowed in Available (stock, no order), Installed (the download is done),
#: Error (the attempt failed; nothing proceeds until someone acts) and Unavailable (final).
BUSY_STATES: dict[str, str] = {
    S.ALLOCATED.value: "an ES2+ order for it is open",
    S.LINKED.value: "an ES2+ order for it is open",
    S.CONFIRMED.value: "an ES2+ order for it is open",
    S.RELEASED.value: "it is downloadable, so whoever holds its activation code may start a download",
    S.DOWNLOADED.value: "its Bound Profile Package was delivered and the installation result is outstanding",
}


@dataclass(frozen=True)
class ImportedProfile:
    iccid: str
    matching_id: str | None
    eid: str | None
    confirmation_code_required: bool
    file_iccid: str | None = None  # the ICCID the package had before ``iccid=`` stamped it


@dataclass(frozen=True)
class DeletedProfile:
    iccid: str
    state: str
    download_sessions: int
    notifications: int


def package_context(iccid: str) -> bytes:
    """The sealing context of profile ``iccid``'s package: a sealed package opens only as that profile's."""
    return b"profile:" + iccid.encode()


def seal_package(sealer: Sealer, iccid: str, der: bytes) -> bytes:
    """``Profile.package_sealed``: the unprotected profile package (Ki, OPc, PINs inside) sealed with the master
    key, once, when the profile is stored."""
    return sealer.seal(der, context=package_context(iccid))


def open_package(sealer: Sealer, profile: Profile) -> bytes:
    """The profile's package DER, as imported or generated, byte for byte (ValueError if it does not open)."""
    return sealer.open(profile.package_sealed, context=package_context(profile.iccid))


def database_sealer(db: Database, sealer: Sealer | None = None) -> Sealer:
    """``sealer``, else the one the database was opened with (see Database.sealer); a writer never stores a
    profile package or a confirmation code in clear, so no sealer is an error."""
    chosen = sealer if sealer is not None else db.sealer
    if chosen is None:
        raise RuntimeError("no master key to seal profiles with: pass a sealer or open the database with one")
    return chosen


def default_metadata(iccid: str) -> dict[str, Any]:
    return {"serviceProviderName": "smdp test", "profileName": f"Test profile {iccid[-6:]}", "profileClass": "test"}


async def import_profile(
    db: Database,
    der: bytes,
    *,
    matching_id: str | None = None,
    eid: str | None = None,
    confirmation_code: str | None = None,
    metadata: dict[str, Any] | None = None,
    reusable: bool = False,
    operator_id: int | None = None,
    profile_type: str | None = None,
    stock: bool = False,
    sealer: Sealer | None = None,
    iccid: str | None = None,
) -> ImportedProfile:
    """Validate ``der`` as a SAIP profile package and store it Released, ready to download.

    The package and the confirmation code's digest are stored sealed with ``sealer`` (default: the database's,
    see :func:`database_sealer`); the package bytes are kept as given, never re-encoded.

    Without a matching ID and without an EID, an unguessable matching ID is generated.  With an EID and
    no matching ID, the profile is that eUICC's default SM-DP+ order (SGP.22 section 3.1.1).  With ``stock``
    the profile is Available instead: stock for ES2+ orders, with no matching ID, EID or code yet.

    ``metadata`` (the JSON form, see smdp.profiles.metadata) is checked completely and stored as given; a
    problem raises ProfileImportError naming the field.  Without it (None or empty) the profile gets
    :func:`default_metadata`.

    With ``iccid`` the package is first given that ICCID (ProfileHeader and EF.ICCID, see
    :mod:`smdp.profiles.stamp`), and the stamped package is what is stored: so one file, e.g. a GSMA TS.48
    test profile, can be imported any number of times.
    """
    file_iccid = None
    try:
        package = validate_profile_package(der)
        if iccid is not None:
            file_iccid = package.iccid
            package = validate_profile_package(stamp_iccid(der, iccid))
            der = package.der  # the stamped bytes, exactly
    except SaipError as exc:
        raise ProfileImportError(f"not a valid profile package: {exc}") from None
    except ValueError as exc:  # the ICCID, which stamp_iccid checks first
        raise ProfileImportError(str(exc)) from None
    if metadata is not None:
        try:
            ProfileMetadata.from_json(metadata)
        except MetadataError as exc:
            raise ProfileImportError(str(exc)) from None
    if eid is not None and not is_valid_eid(eid):
        raise ProfileImportError(f"EID {eid!r} is not 32 digits with valid check digits")
    if matching_id is not None and not matching_id:
        matching_id = None
    if stock and (matching_id or eid or confirmation_code):
        raise ProfileImportError("a stock profile gets its matching ID, EID and confirmation code from an ES2+ order")
    if matching_id is None and eid is None and not stock:
        matching_id = new_matching_id()
    iccid = package.iccid
    sealer = database_sealer(db, sealer)
    cc_hash, cc_hash_hex = seal_confirmation_code(sealer, iccid, confirmation_code)
    profile = Profile(
        iccid=iccid,
        matching_id=matching_id,
        eid=eid,
        state=initial_state(stock=stock).value,
        order_eid=eid,
        operator_id=operator_id,
        profile_type=profile_type,
        package_sealed=seal_package(sealer, iccid, der),
        profile_metadata=metadata or default_metadata(iccid),
        cc_hash=cc_hash,
        cc_hash_hex=cc_hash_hex,
        reusable=reusable,
    )
    try:
        async with db.transaction() as session:
            if await store.profile_by_iccid(session, iccid) is not None:
                raise ProfileImportError(f"a profile with ICCID {iccid} already exists")
            if matching_id and await store.profile_by_matching_id(session, matching_id) is not None:
                raise ProfileImportError(f"matching ID {matching_id!r} is already in use")
            await store.add_profile(session, profile)
    except IntegrityError:
        raise ProfileImportError(f"ICCID {iccid} or matching ID {matching_id!r} is already in use") from None
    return ImportedProfile(iccid, matching_id, eid, confirmation_code is not None, file_iccid)


async def export_package(db: Database, iccid: str, *, sealer: Sealer | None = None) -> bytes:
    """Profile ``iccid``'s unprotected profile package, opened from its sealed form: the DER as imported,
    stamped or generated, which ``import_profile`` takes back (with another ``iccid``, into the same
    database).  It holds the Ki, OPc and PINs in clear: the caller writes it for its owner's eyes only."""
    async with db.transaction() as session:
        profile = await store.profile_by_iccid(session, iccid)
    if profile is None:
        raise ProfileError(f"no profile with ICCID {iccid}")
    return open_package(database_sealer(db, sealer), profile)


async def delete_profile(db: Database, iccid: str, *, force: bool = False) -> DeletedProfile:
    """Delete profile ``iccid`` with its download sessions and the notifications recorded for it (by ICCID,
    or by the transaction ID of one of its sessions), in one transaction that holds the profile's row lock:
    a concurrent download step waits, then finds no profile; nothing is ever half deleted.

    Refused (ProfileBusyError, naming the state) in one of :data:`BUSY_STATES` unless ``force``.  Events
    already in the operators' outbox stay: they are the operator's record of what happened."""
    async with db.transaction() as session:
        profile = await store.profile_by_iccid(session, iccid, for_update=True)
        if profile is None or profile.id is None:
            raise ProfileError(f"no profile with ICCID {iccid}")
        if profile.state in BUSY_STATES and not force:
            raise ProfileBusyError(iccid, profile.state)
        notifications = await session_store.delete_notifications_of_profile(session, profile.id, iccid)
        sessions = await session_store.delete_sessions_of_profile(session, profile.id)
        await store.delete_profile(session, profile)
        return DeletedProfile(iccid, profile.state, sessions, notifications)


async def list_profiles(db: Database, *, operator_id: int | None = None, state: str | None = None) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        rows = await store.list_profiles(session, operator_id=operator_id, state=state)
    return [
        {
            "iccid": p.iccid,
            "matchingId": p.matching_id,
            "eid": p.eid,
            "state": p.state,
            "euiccState": p.euicc_state,
            "profileName": p.profile_metadata.get("profileName"),
            "downloadAttempts": p.download_attempts,
            "profileType": p.profile_type,
        }
        for p in rows
    ]
