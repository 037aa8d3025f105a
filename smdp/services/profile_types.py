"""Profile types and batch generation of personalized profiles (the operator's side of profile
preparation, ahead of SGP.22 ES2+ orders and ES9+ downloads).

``create_profile_type`` checks everything before it writes one row: the template validates and can
be personalized with the type's algorithm and the policy's steering files, the metadata encodes as
a StoreMetadataRequest (SGP.22 section 5.5.3), the policy is a valid document. Nothing is stored
if any check fails.

``generate_profiles`` personalizes the template N times (each package DER-encoded once and sealed once
with the master key, stored as that sealed blob), in batches of one transaction each so that a running server is not locked out for the
whole run. If any batch fails, the profiles of the earlier batches of the same run are deleted
again and the key and activation-code files are not published: a run creates all or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from smdp.crypto.sealed import Sealer
from smdp.profiles.generate import IdentityRange, new_personalization
from smdp.profiles.keyfile import KeyFileError, PrivateCsvWriter, key_file_header, key_file_row
from smdp.profiles.metadata import MetadataError, ProfileMetadata
from smdp.profiles.personalize import ALGORITHMS, Personalization, SteeringFiles, Template
from smdp.profiles.policy import Policy, PolicyError, parse_policy
from smdp.profiles.saip import SaipError, validate_profile_package
from smdp.profiles.usim_files import PlmnWithAct
from smdp.rsp.activation import ActivationCode, new_matching_id
from smdp.rsp.lifecycle import initial_state
from smdp.rsp.metadata import store_metadata_request
from smdp.services.profiles import database_sealer, seal_package
from smdp.store import profiles as store
from smdp.store.db import Database
from smdp.store.tables import Profile, ProfileType

__all__ = [
    "GenerationResult",
    "ProfileTypeError",
    "create_profile_type",
    "generate_profiles",
    "list_profile_types",
    "steering_files",
]

BATCH = 500
_TRIAL_ICCID, _TRIAL_IMSI = "8900000000000000000", "001010000000000"


class ProfileTypeError(ValueError):
    """A profile type or a generation request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class GenerationResult:
    profile_type: str
    count: int
    first_iccid: str
    last_iccid: str
    seconds: float
    key_file: Path | None
    activation_codes: Path | None

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


def steering_files(policy: Policy | None) -> SteeringFiles | None:
    """EF.OPLMNwACT and EF.FPLMN content for a policy's steering (None without steering)."""
    if policy is None or not policy.steering:
        return None
    return SteeringFiles(
        oplmnwact=[PlmnWithAct(p.network.mcc, p.network.mnc, p.access) for p in policy.preferred_networks],
        fplmn=[(n.mcc, n.mnc) for n in policy.forbidden_networks],
    )


def _template(der: bytes, algorithm: str, policy: Policy | None) -> Template:
    try:
        return Template(der, algorithm=algorithm, steering=steering_files(policy))
    except SaipError as exc:
        raise ProfileTypeError(f"template: {exc}") from None


async def create_profile_type(
    db: Database,
    name: str,
    template_der: bytes,
    *,
    metadata: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    algorithm: str = "milenage",
    reusable: bool = False,
    max_download_attempts: int | None = None,
    order_validity_days: int | None = None,
) -> ProfileType:
    """Check and store a profile type (ProfileTypeError naming what is wrong; nothing stored then)."""
    for label, number in (("max_download_attempts", max_download_attempts), ("order_validity_days", order_validity_days)):
        if number is not None and number < 1:
            raise ProfileTypeError(f"{label} must be at least 1, got {number}")
    if not name or len(name) > 64 or not name.isprintable():
        raise ProfileTypeError(f"profile type name must be 1 to 64 printable characters, got {name!r}")
    if algorithm not in ALGORITHMS:
        raise ProfileTypeError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if metadata is not None and not isinstance(metadata, dict):
        raise ProfileTypeError("metadata must be a JSON object")
    if metadata and "policy" in metadata:
        raise ProfileTypeError("metadata: give the policy with --policy, not inside the metadata")
    parsed = None
    if policy is not None:
        try:
            parsed = parse_policy(policy)
        except PolicyError as exc:
            raise ProfileTypeError(f"policy: {exc}") from None
    template = _template(template_der, algorithm, parsed)
    # A trial personalization proves the template works before anything is stored.
    trial = template.personalize(Personalization(_TRIAL_ICCID, _TRIAL_IMSI, bytes(16), bytes(16),
                                                 {k: "0" * n for k, n in template.code_lengths.items()}))  # fmt: skip
    try:
        validate_profile_package(trial)
    except SaipError as exc:
        raise ProfileTypeError(f"template: a personalized profile would not be valid: {exc}") from None
    defaults = dict(metadata) if metadata is not None else {
        "serviceProviderName": "smdp", "profileName": name, "profileClass": "operational"}  # fmt: skip
    try:
        checked = ProfileMetadata.from_json({**defaults, **({"policy": parsed.to_json()} if parsed else {})})
    except MetadataError as exc:
        raise ProfileTypeError(str(exc)) from None
    try:
        store_metadata_request(_TRIAL_ICCID, checked)
    except Exception as exc:  # noqa: BLE001 - asn1tools' own error types: a bug in the model's checks if ever seen
        raise ProfileTypeError(f"metadata does not make a valid StoreMetadataRequest: {exc!r}") from None
    row = ProfileType(name=name, template_der=template_der, profile_metadata=defaults,
                      policy=parsed.to_json() if parsed else None, algorithm=algorithm,
                      reusable=reusable, max_download_attempts=max_download_attempts,
                      order_validity_days=order_validity_days)  # fmt: skip
    try:
        async with db.transaction() as session:
            if await store.profile_type_by_name(session, name) is not None:
                raise ProfileTypeError(f"a profile type named {name!r} already exists")
            await store.add_profile_type(session, row)
    except IntegrityError:
        raise ProfileTypeError(f"a profile type named {name!r} already exists") from None
    return row


async def list_profile_types(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        rows = await store.list_profile_types(session)
        counts = await store.profile_counts_by_type(session)
    return [
        {
            "name": t.name,
            "algorithm": t.algorithm,
            "templateSize": len(t.template_der),
            "profileName": t.profile_metadata.get("profileName"),
            "policy": (t.policy or {}).get("name"),
            "profiles": counts.get(t.name, {}),
        }
        for t in rows
    ]


def profile_metadata(profile_type: ProfileType) -> dict[str, Any]:
    """The metadata JSON each generated profile stores: the type's defaults plus its policy."""
    metadata = dict(profile_type.profile_metadata)
    if profile_type.policy:
        metadata["policy"] = profile_type.policy
    return metadata


async def generate_profiles(
    db: Database,
    type_name: str,
    identities: IdentityRange,
    *,
    key_file: Path,
    op: bytes | None = None,
    activation_codes: Path | None = None,
    smdp_address: str = "127.0.0.1:8443",
    operator_id: int | None = None,
    progress: Callable[[int], None] | None = None,
    sealer: Sealer | None = None,
    crlf: bool = False,
) -> GenerationResult:
    """Personalize ``identities.count`` profiles of ``type_name`` and store them: Available (stock for
    ES2+ orders) or, with ``activation_codes``, Released with a matching ID each, ready to download.
    Writes the key file (see smdp.profiles.keyfile) and the activation-code CSV (iccid, activation code),
    LF line endings unless ``crlf`` (RFC 4180).
    Packages are stored sealed with ``sealer`` (default: the database's, see services.profiles.database_sealer)."""
    started = time.perf_counter()
    sealer = database_sealer(db, sealer)
    if op is not None and len(op) != 16:
        raise ProfileTypeError(f"OP must be 16 bytes, got {len(op)}")
    async with db.transaction() as session:
        profile_type = await store.profile_type_by_name(session, type_name)
    if profile_type is None:
        raise ProfileTypeError(f"no profile type named {type_name!r}")
    policy = parse_policy(profile_type.policy) if profile_type.policy else None
    template = _template(profile_type.template_der, profile_type.algorithm, policy)
    metadata = profile_metadata(profile_type)
    try:
        ProfileMetadata.from_json(metadata)  # checked at creation; a row from an older build may not be
    except MetadataError as exc:
        raise ProfileTypeError(f"profile type {type_name!r}: {exc}") from None
    codes = sorted(template.code_lengths)
    # Milenage keys come from the generator; with the template's own algorithm (the TS.48 test
    # algorithm) the key file says so, since a core must then use that algorithm.
    algorithm = "milenage" if profile_type.algorithm == "milenage" else "template"
    created: list[str] = []
    try:
        with PrivateCsvWriter(key_file, key_file_header(codes), crlf=crlf) as keys, \
                _optional_csv(activation_codes, crlf) as codes_out:
            batch: list[dict[str, Any]] = []
            for number, (iccid, imsi) in enumerate(identities, start=1):
                values = new_personalization(iccid, imsi, template.code_lengths, op)
                der = template.personalize(values)
                if number == 1:
                    validate_profile_package(der)  # the template's output, checked once per run
                matching_id = new_matching_id() if activation_codes else None
                batch.append({"iccid": iccid, "matching_id": matching_id, "package_sealed": seal_package(sealer, iccid, der)})
                keys.write(key_file_row(values, algorithm, codes))
                if codes_out is not None and matching_id:
                    codes_out.write([iccid, str(ActivationCode(smdp_address, matching_id))])
                if len(batch) == BATCH or number == identities.count:
                    await _store_batch(db, batch, profile_type, metadata, operator_id)
                    created.extend(p["iccid"] for p in batch)
                    batch = []
                    if progress is not None:
                        progress(number)
            keys.commit()
            if codes_out is not None:
                codes_out.commit()
    except BaseException as exc:
        await _delete(db, created)
        if isinstance(exc, (SaipError, KeyFileError)):
            raise ProfileTypeError(str(exc)) from None
        raise
    first, last = created[0], created[-1]
    return GenerationResult(profile_type.name, len(created), first, last, time.perf_counter() - started,
                            key_file, activation_codes)  # fmt: skip


class _NoFile:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _optional_csv(path: Path | None, crlf: bool) -> Any:
    return PrivateCsvWriter(path, ["iccid", "activation_code"], crlf=crlf) if path is not None else _NoFile()


async def _store_batch(
    db: Database, batch: list[dict[str, Any]], profile_type: ProfileType, metadata: dict[str, Any],
    operator_id: int | None,
) -> None:
    async with db.transaction() as session:
        taken = await store.existing_iccids(session, [p["iccid"] for p in batch])
        if taken:
            raise ProfileTypeError(f"ICCID {taken[0]} is already in use ({len(taken)} of this batch are)")
        rows = [
            Profile(
                iccid=item["iccid"], matching_id=item["matching_id"], package_sealed=item["package_sealed"],
                state=initial_state(stock=not item["matching_id"]).value, profile_metadata=metadata,
                profile_type=profile_type.name, operator_id=operator_id, reusable=profile_type.reusable,
                max_download_attempts=profile_type.max_download_attempts,
            )
            for item in batch
        ]  # fmt: skip
        try:
            await store.add_profiles(session, rows)
        except IntegrityError as exc:
            raise ProfileTypeError(f"a generated ICCID or matching ID is already in use: {exc.orig}") from None


async def _delete(db: Database, iccids: list[str]) -> None:
    """Undo a failed run: remove the profiles its earlier batches stored."""
    for start in range(0, len(iccids), BATCH):
        async with db.transaction() as session:
            await store.delete_profiles(session, iccids[start : start + BATCH])
