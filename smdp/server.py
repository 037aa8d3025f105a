"""``smdp serve``: first-start setup (test PKI, database, demo profile) and the HTTPS ES9+ server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import secrets
import signal
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from smdp.codec import asn1
from smdp.config import Settings
from smdp.config_file import ListenerConfig, load_listener_files
from smdp.crypto.sealed import Sealer, load_or_create_master_key
from smdp.pki.issue import init_pki, reissue_dptls, tls_names_with_defaults
from smdp.pki.store import PkiConfigError, ServerCredentials, load_certificate, load_server_credentials
from smdp.pki.tls import (
    address_host,
    mutual_tls_server_context,
    names_host,
    server_ssl_context,
    tls_server_context,
)
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import luhn_check_digit
from smdp.rsp.activation import ActivationCode
from smdp.rsp.es9 import normalize_address
from smdp.services.download import DownloadService
from smdp.services.operators import ensure_default_operator
from smdp.services.orders import OrderService
from smdp.services.outbox import Outbox
from smdp.services.profiles import import_profile, list_profiles
from smdp.store.db import Database
from smdp.store.files import secure_data_dir, tighten
from smdp.web.app import make_app
from smdp.web.client_auth import ClientAuth
from smdp.web.limits import LimitedSite, Limits

log = logging.getLogger(__name__)

DEMO_ICCID_PREFIX = "8988247000000000"  # 89 (telecom) 882 (international) 47 …: test range


def ensure_pki(settings: Settings, tls_hosts: Sequence[str] = ()) -> Path:
    """The PKI manifest to use; creates the test PKI in the data directory on first use.

    ``tls_hosts`` are the host names LPAs are given for this server (see :func:`tls_hosts_of`): a device
    resolving one of them to this machine must find it in the TLS certificate. The generated PKI's DPtls
    certificate names them from the start, or is re-issued under the same CI when it does not yet; a
    manifest the user gave (``--pki``) is never modified: one warning says which names it lacks."""
    manifest = settings.pki_manifest
    generated = manifest == (settings.certs_dir / "pki.toml").resolve()
    if not manifest.exists():
        if not generated:
            raise PkiConfigError(f"PKI manifest {manifest} does not exist")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        init_pki(settings.certs_dir, tls_names=tls_names_with_defaults(tls_hosts))
        tighten(settings.certs_dir)  # certificates are written 0644: in the data directory everything is 0600
        log.info("created a test PKI in %s", settings.certs_dir)
        return manifest
    if tls_hosts and generated:
        try:
            names = reissue_dptls(settings.certs_dir, tls_hosts)
        except PkiConfigError as exc:  # not the layout init_pki writes (files replaced by hand): leave it alone
            log.warning("cannot re-issue the TLS certificate for %s: %s", ", ".join(tls_hosts), exc)
            names = None
        if names is not None:
            tighten(settings.certs_dir)
            log.warning("re-issued the TLS certificate %s under the same CI for %s (it names %s)",
                        settings.certs_dir / "tls" / "dptls.crt.pem", ", ".join(tls_hosts), ", ".join(names))  # fmt: skip
        return manifest
    if tls_hosts:
        _warn_unnamed_tls_hosts(manifest, tls_hosts)
    return manifest


def tls_hosts_of(host: str, addresses: Sequence[str]) -> list[str]:
    """The hosts LPAs are told: those of ``serve --address`` (HOST[:PORT]) and the bound ``host`` unless it is a
    wildcard or loopback one (the generated TLS certificate names loopback anyway). What is no host name is
    skipped here: TLS names are not where such a mistake should stop the server."""
    bound = [] if host in ("", "0.0.0.0", "::", "localhost", "127.0.0.1", "::1") else [f"[{host.strip('[]')}]"]
    hosts: list[str] = []
    for address in [*addresses, *bound]:
        try:
            hosts.append(address_host(address))
        except ValueError:
            continue
    return list(dict.fromkeys(hosts))


def _warn_unnamed_tls_hosts(manifest: Path, hosts: Sequence[str]) -> None:
    """One warning listing the ``hosts`` the TLS certificate of a user-given manifest does not name."""
    try:
        credentials = load_server_credentials(manifest)
        cert = load_certificate(credentials.tls_cert_path)
    except PkiConfigError:
        return  # open_runtime reports the manifest's problem itself
    missing = [h for h in hosts if not names_host(cert, h)]
    if missing:
        log.warning("the TLS certificate %s (from --pki %s) does not name %s: an LPA that checks it will refuse the "
                    "connection; re-issue it for these names, or serve the data directory's own PKI (no --pki), "
                    "whose TLS certificate `serve --address` re-issues", credentials.tls_cert_path, manifest,
                    ", ".join(missing))  # fmt: skip


def accepted_addresses(host: str, port: int, extra: list[str]) -> frozenset[str]:
    """The SM-DP+ addresses an LPA may name in initiateAuthentication (compared case-insensitively)."""
    hosts = {host, "localhost", "127.0.0.1", "[::1]"} if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0") else {host}
    names = {f"{h}:{port}" for h in hosts} | {normalize_address(a) for a in extra}
    return frozenset(normalize_address(a) for a in names)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    credentials: ServerCredentials
    download: DownloadService
    ordering: OrderService
    outbox: Outbox
    default_operator_id: int


async def open_runtime(
    settings: Settings, addresses: frozenset[str], *, lab_hex_confirmation_code: bool = False, tls_hosts: Sequence[str] = ()
) -> Runtime:
    secure_data_dir(settings)  # umask 077, the data directory 0700, files an earlier run left readable fixed
    asn1.rsp()  # compile the ASN.1 modules now, not on the first request
    manifest = ensure_pki(settings, tls_hosts)
    credentials = load_server_credentials(manifest)
    db = Database(settings.database_url)
    sealer = Sealer(load_or_create_master_key(settings.master_key_path))
    await db.upgrade(sealer)  # the schema to this build's revision (created in an empty database)
    operator_id = await ensure_default_operator(db, settings.data_dir)
    return Runtime(
        settings,
        db,
        credentials,
        DownloadService(db, credentials, sealer, addresses, accept_hex_confirmation_code=lab_hex_confirmation_code),
        OrderService(db, smdp_address=""),
        Outbox(db),
        operator_id,
    )


@dataclass(frozen=True)
class ListenerInfo:
    """One listener as the startup lines and DATA_DIR/server.json describe it."""

    name: str
    address: str  # host:port, bound
    interfaces: tuple[str, ...]
    cis: tuple[str, ...]  # "nist 1a2b…": the CIs its ES9+ offers (empty when it serves no ES9+)
    client_auth: str | None  # how ES2+ and /admin callers authenticate (None: it serves neither)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "interfaces": list(self.interfaces), "cis": list(self.cis),
                "clientAuth": self.client_auth}  # fmt: skip

    def describe(self) -> str:
        served = ", ".join({"es9": "ES9+", "es2": "ES2+", "admin": "/admin"}[i] for i in self.interfaces)
        parts = [served]
        if self.cis:
            parts.append("CIs " + "; ".join(self.cis))
        if self.client_auth is not None:
            parts.append({"token": "operators by API token", "mtls": "operators by TLS client certificate",
                          "both": "operators by TLS client certificate and API token"}[self.client_auth])  # fmt: skip
        return f"{self.name} on https://{self.address}: " + ", ".join(parts)


@dataclass
class Listeners:
    """Where :func:`serving` listens.  ``device`` (host:port) serves ES9+ (and, without an operator port, ES2+
    and /admin too); ``operator`` serves ES2+ and /admin when an operator port was given, else it is None.
    ``sites`` (by role, "device" and "operator"; by listener name with ``listeners``) report open, peak and
    refused connections; ``all`` describes every listener.

    With configured listeners, ``device`` is the first serving ES9+ and ``operator`` the first other one
    serving ES2+ (one authenticating by API token preferred: what `smdp order` can use)."""

    device: str
    operator: str | None
    sites: dict[str, LimitedSite]
    all: list[ListenerInfo] = field(default_factory=list)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class _Plan:
    """One listener to start: its application, TLS context, and the download service its ES9+ uses."""

    name: str
    host: str
    port: int
    app: web.Application
    ssl_context: ssl.SSLContext
    interfaces: tuple[str, ...]
    download: DownloadService | None  # None: no ES9+ here
    client_auth: str | None


def _chains_of(credentials: ServerCredentials) -> tuple[str, ...]:
    return tuple(f"{chain.curve.value} {chain.ci_pkid.hex()}" for chain in credentials.chains)


def _default_plans(
    runtime: Runtime, host: str, port: int, limits: Limits, operator_host: str | None, operator_port: int | None
) -> list[_Plan]:
    """``smdp serve`` without --config: the device listener, and the operator listener with --operator-port."""
    ssl_context = server_ssl_context(runtime.credentials)
    separate = operator_port is not None
    device = ("es9",) if separate else ("es9", "es2", "admin")
    plans = [_Plan("device", host, port, make_app(runtime.download, runtime.ordering, operator=not separate, limits=limits),
                   ssl_context, device, runtime.download, None if separate else "token")]  # fmt: skip
    if operator_port is not None:
        operator_app = make_app(runtime.download, runtime.ordering, device=False, limits=limits)
        plans.append(_Plan("operator", operator_host or host, operator_port, operator_app, ssl_context, ("es2", "admin"), None, "token"))
    return plans


async def _configured_plans(runtime: Runtime, listeners: Sequence[ListenerConfig], limits: Limits) -> list[_Plan]:
    """One plan per [[listener]] of ``smdp serve --config``: its CIs (a DownloadService of its own that offers
    initiateAuthentication only those; later steps of a session use every CI, see DownloadService), its TLS
    certificate, and for a mutual-TLS listener the client-certificate context and policy."""
    await _check_operators(runtime, listeners)
    plans = []
    for listener in listeners:
        if any(op.certificate is None for op in listener.operators):
            listener = load_listener_files(listener)
        credentials = listener.credentials(runtime.credentials)  # ConfigError naming the line of a CI not in the PKI
        cert = listener.tls_cert or runtime.credentials.tls_cert_path
        key = listener.tls_key or runtime.credentials.tls_key_path
        policy: ClientAuth | None = None
        if listener.operator_facing:
            policy = listener.client_auth_policy()
        if policy is not None and policy.wants_certificate:
            context = mutual_tls_server_context(cert, key, policy.trust_anchors, ignore_validity=policy.accept_expired)
            if policy.accept_expired:
                log.warning("listener %r accepts expired and not yet valid TLS client certificates "
                            "(lab option accept_expired_client_certs)", listener.name)  # fmt: skip
        else:
            context = tls_server_context(cert, key)
        download = None
        if "es9" in listener.interfaces:
            download = dataclasses.replace(runtime.download, initiate_credentials=credentials)
        app = make_app(download or runtime.download, runtime.ordering, interfaces=listener.interfaces, limits=limits,
                       client_auth=policy)  # fmt: skip
        plans.append(_Plan(listener.name, listener.host, listener.port, app, context, listener.interfaces, download,
                           policy.mode if policy is not None else None))  # fmt: skip
    return plans


async def _check_operators(runtime: Runtime, listeners: Sequence[ListenerConfig]) -> None:
    """Every operator a listener names for its client certificates must exist: a typo would otherwise turn
    into 403 answers to the operator it was meant for, found only when they call."""
    from smdp.store.operators import operator_by_name

    async with runtime.db.transaction() as session:
        for listener in listeners:
            for op in listener.operators:
                if await operator_by_name(session, op.name) is None:
                    raise listener.error(
                        "name",
                        f"no operator {op.name!r} in the database; create it with "
                        f"`smdp operator add {op.name} --data-dir {runtime.settings.data_dir}`",
                        table=op.table,
                    )


@asynccontextmanager
async def serving(
    runtime: Runtime,
    host: str,
    port: int,
    public_address: str | None = None,
    *,
    limits: Limits | None = None,
    operator_host: str | None = None,
    operator_port: int | None = None,
    listeners: Sequence[ListenerConfig] | None = None,
) -> AsyncIterator[Listeners]:
    """Serve ES9+/ES2+ over HTTPS and deliver operator callbacks; yields where it listens.  LPAs and operators
    are told ``public_address`` (e.g. a host name in front of a proxy) if given, else the bound address.

    With ``operator_port`` (0: an ephemeral port), ES2+ and /admin are served only on a second listener
    (``operator_host``, default ``host``; the same TLS credentials), so that the device-facing port, which
    must be reachable from any network, does not expose the operator interfaces.  Every listener enforces
    ``limits`` (timeouts and a connection cap, see smdp.web.limits; defaults if None).

    ``listeners`` (``smdp serve --config``, see smdp.config_file) replaces ``host``, ``port`` and the operator
    options: one application and LimitedSite per listener, in this process and event loop, each with its own
    interfaces, CIs, TLS certificate and operator authentication.  Every ES9+ listener accepts its own bound
    address and the public addresses (``runtime.download.addresses`` as open_runtime got them)."""
    limits = limits or Limits()
    if listeners:
        plans = await _configured_plans(runtime, listeners, limits)
    else:
        plans = _default_plans(runtime, host, port, limits, operator_host, operator_port)
    public = runtime.download.addresses
    async with AsyncExitStack() as stack:
        sites: dict[str, LimitedSite] = {}
        infos: list[ListenerInfo] = []
        for plan in plans:
            runner = web.AppRunner(plan.app, access_log=None, **limits.runner_kwargs())
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = LimitedSite(runner, plan.host, plan.port, ssl_context=plan.ssl_context, limits=limits)
            await site.start()
            sites[plan.name] = site
            bound = _host_port(plan.host, site.port)
            cis = _chains_of(plan.download.initiate_credentials or runtime.credentials) if plan.download is not None else ()
            infos.append(ListenerInfo(plan.name, bound, plan.interfaces, cis, plan.client_auth))
        device_index = next((i for i, plan in enumerate(plans) if "es9" in plan.interfaces), None)
        if device_index is None:
            raise ValueError("no listener serves es9: devices could not reach the SM-DP+")
        address = infos[device_index].address
        if listeners:
            for plan, info in zip(plans, infos, strict=True):
                if plan.download is not None:
                    own = accepted_addresses(plan.host, sites[plan.name].port, [info.address])
                    plan.download.addresses = public | own
                    runtime.download.addresses = runtime.download.addresses | own
        else:
            bound_port = sites["device"].port
            runtime.download.addresses = runtime.download.addresses | accepted_addresses(host, bound_port, [public_address or address])
        runtime.ordering.smdp_address = public_address or address  # ConfirmOrder's smdpAddress (SGP.22 5.3.2)
        operator = _operator_address(infos, device_index)
        tasks = [asyncio.create_task(runtime.outbox.run()), asyncio.create_task(_housekeeping(runtime))]
        try:
            yield Listeners(address, operator, sites, infos)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _operator_address(infos: list[ListenerInfo], device_index: int) -> str | None:
    """The listener `smdp order` should use for ES2+ when it is not the device listener: the first serving ES2+
    with the API token, else the first serving ES2+ at all; None when the device listener serves ES2+ (or none does)."""
    es2 = [i for i, info in enumerate(infos) if "es2" in info.interfaces]
    by_token = [i for i in es2 if infos[i].client_auth == "token"]
    candidates = by_token or es2
    if not candidates or candidates[0] == device_index:
        return None
    return infos[candidates[0]].address


@asynccontextmanager
async def running(runtime: Runtime, host: str, port: int, public_address: str | None = None, **options: Any) -> AsyncIterator[str]:
    """:func:`serving` (same options), yielding only the device-facing host:port."""
    async with serving(runtime, host, port, public_address, **options) as listeners:
        yield listeners.device


async def _housekeeping(runtime: Runtime, every: float = 60.0) -> None:
    """Close download sessions abandoned mid-flow once they expire, so every session ends in a defined state, and
    delete the sessions nobody needs any more (see DownloadService.purge_sessions)."""
    while True:
        try:
            closed = await runtime.download.expire_sessions()
            purged = await runtime.download.purge_sessions()
            if closed or purged:
                log.info("housekeeping: closed %d expired download sessions, deleted %d", closed, purged)
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop housekeeping for good; one line, not a traceback
            log.warning("housekeeping failed: %s", exc)
        await asyncio.sleep(every)


async def ensure_demo_profile(db: Database, address: str, operator_id: int | None = None) -> ActivationCode | None:
    """On the first start (an empty database) create a demo profile; return its activation code."""
    if await list_profiles(db):
        return None
    serial = DEMO_ICCID_PREFIX[2:] + f"{secrets.randbelow(100):02d}"
    iccid = "89" + serial + luhn_check_digit("89" + serial)
    der = build_demo_profile(iccid=iccid, imsi="001010000000001", ki=os.urandom(16), opc=os.urandom(16))
    imported = await import_profile(
        db,
        der,
        metadata={"serviceProviderName": "smdp demo", "profileName": "Demo profile", "profileClass": "test"},
        operator_id=operator_id,
    )
    assert imported.matching_id is not None
    return ActivationCode(address, imported.matching_id)


async def serve(
    settings: Settings,
    host: str,
    port: int,
    extra_addresses: list[str],
    *,
    lab_hex_confirmation_code: bool = False,
    limits: Limits | None = None,
    operator_host: str | None = None,
    operator_port: int | None = None,
    session_retention_days: float = 30.0,
    listeners: Sequence[ListenerConfig] = (),
) -> None:
    """Run the server until SIGTERM or SIGINT.  ``listeners`` (``smdp serve --config``) replace ``host``,
    ``port`` and the operator options (see :func:`serving`)."""
    if listeners:
        addresses = frozenset(normalize_address(a) for a in extra_addresses)
        tls_hosts = list(dict.fromkeys(h for listener in listeners for h in tls_hosts_of(listener.host, extra_addresses)))
    else:
        addresses, tls_hosts = accepted_addresses(host, port, extra_addresses), tls_hosts_of(host, extra_addresses)
    runtime = await open_runtime(
        settings, addresses, lab_hex_confirmation_code=lab_hex_confirmation_code,
        tls_hosts=tls_hosts,
    )
    runtime.download.session_retention = timedelta(days=session_retention_days)
    try:
        public = extra_addresses[0] if extra_addresses else None
        async with serving(
            runtime, host, port, public, limits=limits, operator_host=operator_host, operator_port=operator_port,
            listeners=listeners or None,
        ) as bound:  # fmt: skip
            address = bound.device
            demo = await ensure_demo_profile(runtime.db, public or address, runtime.default_operator_id)
            write_server_info(settings, address, bound.operator, bound.all if listeners else None)
            if demo is not None:
                print(f"smdp: demo profile activation code: {demo}", flush=True)
                print(f"smdp: try it:  smdp lpa download --data-dir {settings.data_dir} '{demo}'", flush=True)
            print(f"smdp: SM-DP+ listening on https://{address} (data: {settings.data_dir})", flush=True)
            if listeners:
                for info in bound.all:
                    print(f"smdp: listener {info.describe()}", flush=True)
            elif bound.operator is not None:
                print(f"smdp: ES2+ and /admin listening on https://{bound.operator} only", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):  # finish in-flight requests, close the database
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
    finally:
        remove_server_info(settings)
        await runtime.db.dispose()


def remove_server_info(settings: Settings) -> None:
    """Remove DATA_DIR/server.json when it is this process's (another server may have started since)."""
    info = settings.data_dir / "server.json"
    try:
        if json.loads(info.read_text()).get("pid") == os.getpid():
            info.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def write_server_info(
    settings: Settings, address: str, operator_address: str | None = None, listeners: Sequence[ListenerInfo] | None = None
) -> None:
    """DATA_DIR/server.json: where the local server listens, for `smdp order` with no --url (``operator_address``:
    the ES2+ listener when it is separate; ``listeners``: every listener of ``serve --config`` and what it serves)."""
    info = settings.data_dir / "server.json"
    fields: dict[str, object] = {"address": address, "pid": os.getpid()}
    if operator_address is not None:
        fields["operator_address"] = operator_address
    if listeners is not None:
        fields["listeners"] = [listener.as_json() for listener in listeners]
    info.write_text(json.dumps(fields) + "\n")
