"""``smdp serve``: first-start setup (test PKI, database, demo profile) and the HTTPS ES9+ server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from smdp.codec import asn1
from smdp.config import Settings
from smdp.crypto.sealed import Sealer, load_or_create_master_key
from smdp.pki.issue import init_pki
from smdp.pki.store import PkiConfigError, ServerCredentials, load_server_credentials
from smdp.pki.tls import server_ssl_context
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
from smdp.web.limits import LimitedSite, Limits

log = logging.getLogger(__name__)

DEMO_ICCID_PREFIX = "8988247000000000"  # 89 (telecom) 882 (international) 47 …: test range


def ensure_pki(settings: Settings) -> Path:
    """The PKI manifest to use; creates the test PKI in the data directory on first use."""
    manifest = settings.pki_manifest
    if manifest.exists():
        return manifest
    if manifest != (settings.certs_dir / "pki.toml").resolve():
        raise PkiConfigError(f"PKI manifest {manifest} does not exist")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    init_pki(settings.certs_dir)
    tighten(settings.certs_dir)  # certificates are written 0644: in the data directory everything is 0600
    log.info("created a test PKI in %s", settings.certs_dir)
    return manifest


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


async def open_runtime(settings: Settings, addresses: frozenset[str], *, lab_hex_confirmation_code: bool = False) -> Runtime:
    secure_data_dir(settings)  # umask 077, the data directory 0700, files an earlier run left readable fixed
    asn1.rsp()  # compile the ASN.1 modules now, not on the first request
    manifest = ensure_pki(settings)
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


@dataclass
class Listeners:
    """Where :func:`serving` listens.  ``device`` (host:port) serves ES9+ (and, without an operator port, ES2+
    and /admin too); ``operator`` serves ES2+ and /admin when an operator port was given, else it is None.
    ``sites`` (by role, "device" and "operator") report open, peak and refused connections."""

    device: str
    operator: str | None
    sites: dict[str, LimitedSite]


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
) -> AsyncIterator[Listeners]:
    """Serve ES9+/ES2+ over HTTPS and deliver operator callbacks; yields where it listens.  LPAs and operators
    are told ``public_address`` (e.g. a host name in front of a proxy) if given, else the bound address.

    With ``operator_port`` (0: an ephemeral port), ES2+ and /admin are served only on a second listener
    (``operator_host``, default ``host``; the same TLS credentials), so that the device-facing port, which
    must be reachable from any network, does not expose the operator interfaces.  Every listener enforces
    ``limits`` (timeouts and a connection cap, see smdp.web.limits; defaults if None)."""
    limits = limits or Limits()
    ssl_context = server_ssl_context(runtime.credentials)
    separate = operator_port is not None
    apps = {"device": (make_app(runtime.download, runtime.ordering, operator=not separate, limits=limits), host, port)}
    if operator_port is not None:
        operator_app = make_app(runtime.download, runtime.ordering, device=False, limits=limits)
        apps["operator"] = (operator_app, operator_host or host, operator_port)
    async with AsyncExitStack() as stack:
        sites: dict[str, LimitedSite] = {}
        bound: dict[str, str] = {}
        for role, (app, bind_host, bind_port) in apps.items():
            runner = web.AppRunner(app, access_log=None, **limits.runner_kwargs())
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = LimitedSite(runner, bind_host, bind_port, ssl_context=ssl_context, limits=limits)
            await site.start()
            sites[role] = site
            bound[role] = _host_port(bind_host, site.port)
        address = bound["device"]
        bound_port = sites["device"].port
        runtime.download.addresses = runtime.download.addresses | accepted_addresses(host, bound_port, [public_address or address])
        runtime.ordering.smdp_address = public_address or address  # ConfirmOrder's smdpAddress (SGP.22 5.3.2)
        tasks = [asyncio.create_task(runtime.outbox.run()), asyncio.create_task(_housekeeping(runtime))]
        try:
            yield Listeners(address, bound.get("operator"), sites)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


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
        except Exception as exc:  # a database hiccup must not stop housekeeping for good; one line, not a traceback
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
) -> None:
    runtime = await open_runtime(
        settings, accepted_addresses(host, port, extra_addresses), lab_hex_confirmation_code=lab_hex_confirmation_code
    )
    runtime.download.session_retention = timedelta(days=session_retention_days)
    try:
        public = extra_addresses[0] if extra_addresses else None
        async with serving(
            runtime, host, port, public, limits=limits, operator_host=operator_host, operator_port=operator_port
        ) as listeners:
            address = listeners.device
            demo = await ensure_demo_profile(runtime.db, public or address, runtime.default_operator_id)
            write_server_info(settings, address, listeners.operator)
            if demo is not None:
                print(f"smdp: demo profile activation code: {demo}", flush=True)
                print(f"smdp: try it:  smdp lpa download --data-dir {settings.data_dir} '{demo}'", flush=True)
            print(f"smdp: SM-DP+ listening on https://{address} (data: {settings.data_dir})", flush=True)
            if listeners.operator is not None:
                print(f"smdp: ES2+ and /admin listening on https://{listeners.operator} only", flush=True)
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


def write_server_info(settings: Settings, address: str, operator_address: str | None = None) -> None:
    """DATA_DIR/server.json: where the local server listens, for `smdp order` with no --url (``operator_address``:
    the ES2+ listener when it is separate)."""
    info = settings.data_dir / "server.json"
    fields: dict[str, object] = {"address": address, "pid": os.getpid()}
    if operator_address is not None:
        fields["operator_address"] = operator_address
    info.write_text(json.dumps(fields) + "\n")
