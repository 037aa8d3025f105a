"""Profile import (SGP.22 unprotected profile packages) and listing, for the CLI and the server's first start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from smdp.crypto.cc import seal_confirmation_code
from smdp.crypto.sealed import Sealer
from smdp.pki.eid import is_valid_eid
from smdp.profiles.metadata import MetadataError, ProfileMetadata
from smdp.profiles.saip import SaipError, validate_profile_package
from smdp.rsp.activation import new_matching_id
from smdp.rsp.lifecycle import initial_state
from smdp.store import profiles as store
from smdp.store.db import Database
from smdp.store.tables import Profile


class ProfileImportError(ValueError):
    """The profile can't be imported; the message says why."""


@dataclass(frozen=True)
class ImportedProfile:
    iccid: str
    matching_id: str | None
    eid: str | None
    confirmation_code_required: bool


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
    """
    try:
        package = validate_profile_package(der)
    except SaipError as exc:
        raise ProfileImportError(f"not a valid profile package: {exc}") from None
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
    return ImportedProfile(iccid, matching_id, eid, confirmation_code is not None)


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
