"""The aiohttp application: ES9+ (SGP.22 6.5.2) and ES2+ (6.5.1) routes, the admin API and its OpenAPI document."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from aiohttp import web

from smdp.rsp import es2
from smdp.rsp.status import REQUESTER_NOT_ALLOWED, UNKNOWN_REQUESTER, RspError
from smdp.services.download import DownloadService
from smdp.services.orders import OrderService
from smdp.services.profiles import list_profiles
from smdp.store import operators
from smdp.store.db import Database
from smdp.store.tables import Operator
from smdp.web.binding import HttpRefusal, json_function
from smdp.web.client_auth import ClientAuth, fingerprint
from smdp.web.limits import LIMITS_KEY, Limits

ES9_PREFIX = "/gsma/rsp2/es9plus/"
ES2_PREFIX = "/gsma/rsp2/es2plus/"
OPENAPI = Path(__file__).with_name("openapi.json")

log = logging.getLogger(__name__)


def make_app(
    download: DownloadService,
    ordering: OrderService | None = None,
    *,
    device: bool = True,
    operator: bool = True,
    limits: Limits | None = None,
    interfaces: Collection[str] | None = None,
    client_auth: ClientAuth | None = None,
) -> web.Application:
    """The application serving the device interface (ES9+) if ``device``, the operator interfaces (ES2+ and
    /admin; needs ``ordering``) if ``operator``, and /openapi.json always.  ``smdp serve --operator-port``
    runs one application of each kind on its own listener, so that ES2+ and /admin are not reachable on the
    device-facing port.  ``limits`` (the body-read timeout) are stored under LIMITS_KEY for the JSON binding.

    ``interfaces`` (a listener of ``smdp serve --config``: any of "es9", "es2", "admin") replaces ``device``
    and ``operator`` when given.  ``client_auth`` says how ES2+ and /admin callers authenticate (API token,
    TLS client certificate or both, see smdp.web.client_auth; default: the token)."""
    if interfaces is None:
        interfaces = ({"es9"} if device else set()) | ({"es2", "admin"} if operator else set())
    app = web.Application(client_max_size=1024 * 1024)
    app[LIMITS_KEY] = limits or Limits()
    if "es9" in interfaces:
        _add_es9_routes(app, download)
    if "es2" in interfaces and ordering is not None:
        authenticate = _es2_authenticator(ordering.db, client_auth)
        es2_functions = {
            "downloadOrder": ordering.download_order,
            "confirmOrder": ordering.confirm_order,
            "cancelOrder": ordering.cancel_order,
            "releaseProfile": ordering.release_profile,
        }
        app.add_routes([web.post(ES2_PREFIX + n, json_function(fn, authenticate)) for n, fn in es2_functions.items()])
    if "admin" in interfaces and ordering is not None:
        app.add_routes([web.get("/admin/profiles", _admin_profiles(ordering.db, client_auth))])
    app.add_routes([web.get("/openapi.json", _openapi)])
    return app


def _add_es9_routes(app: web.Application, download: DownloadService) -> None:
    es9 = {
        "initiateAuthentication": download.initiate_authentication,
        "authenticateClient": download.authenticate_client,
        "getBoundProfilePackage": download.get_bound_profile_package,
        "handleNotification": download.handle_notification,
        "cancelSession": download.cancel_session,
    }
    app.add_routes([web.post(ES9_PREFIX + name, json_function(fn)) for name, fn in es9.items()])


async def _bearer_operator(db: Database, request: web.Request) -> Operator | None:
    """The operator whose API token the request presents; None if missing, malformed or unknown.  aiohttp
    decodes header bytes as UTF-8 with surrogate escapes, so anything but the token alphabet is refused here."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip(" \t")
    if scheme.lower() != "bearer" or not 0 < len(token) <= 512:
        return None
    if not all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in token):  # RFC 6750 b64token
        return None
    async with db.transaction() as session:
        return await operators.operator_by_token(session, token)


def _peer_certificate(request: web.Request) -> bytes | None:
    """The TLS client certificate (DER) of the request's connection, if it presented one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


async def _caller(db: Database, request: web.Request, client_auth: ClientAuth | None) -> Operator:
    """The operator calling ES2+ or /admin, as the listener's ``client_auth`` identifies it (smdp.web.client_auth).

    With the token alone, a missing or unknown token is an SGP.22 error (1.1/1.1, HTTP 200) as before.  On a
    mutual-TLS listener the handshake has already refused unknown issuers; a trusted certificate configured
    for no operator, or a token of another operator ("both"), is HTTP 403, missing credentials 401."""
    if client_auth is None or not client_auth.wants_certificate:
        operator = await _bearer_operator(db, request)
        if operator is None:
            raise RspError(UNKNOWN_REQUESTER, "missing or unknown API token")
        return operator
    der = _peer_certificate(request)
    if not der:
        raise HttpRefusal(401, UNKNOWN_REQUESTER, "no TLS client certificate")
    name = client_auth.operator_of(der)
    if name is None:
        log.warning("%s: TLS client certificate sha256 %s is configured for no operator of this listener", request.path, fingerprint(der))
        raise HttpRefusal(403, REQUESTER_NOT_ALLOWED, "the TLS client certificate is not configured for an operator here")
    if client_auth.accept_expired and ClientAuth.expired(der):
        log.warning("%s: operator %s authenticated with an expired TLS client certificate (lab option)", request.path, name)
    if client_auth.wants_token:
        by_token = await _bearer_operator(db, request)
        if by_token is None:
            raise HttpRefusal(401, UNKNOWN_REQUESTER, "missing or unknown API token (this listener wants the certificate and the token)")
        if by_token.name != name:
            raise HttpRefusal(403, REQUESTER_NOT_ALLOWED, "the API token and the TLS client certificate are different operators'")
        return by_token
    async with db.transaction() as session:
        operator = await operators.operator_by_name(session, name)
    if operator is None:  # deleted since the server started (which checks that every configured one exists)
        raise HttpRefusal(403, REQUESTER_NOT_ALLOWED, f"operator {name!r} of this certificate does not exist")
    return operator


def _es2_authenticator(db: Database, client_auth: ClientAuth | None = None):  # type: ignore[no-untyped-def]
    """ES2+ callers authenticate as the listener says (:func:`_caller`: API token, TLS client certificate or
    both); header.functionRequesterIdentifier must be the operator's name (SGP.22 6.5.1.3)."""

    async def authenticate(request: web.Request, body: dict[str, Any]) -> Operator:
        requester, _call = es2.header(body)
        operator = await _caller(db, request, client_auth)
        if requester != operator.name:
            raise RspError(REQUESTER_NOT_ALLOWED, f"functionRequesterIdentifier {requester!r} is not this token's operator")
        return operator

    return authenticate


def _admin_profiles(db: Database, client_auth: ClientAuth | None = None):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        try:
            operator = await _caller(db, request, client_auth)
        except RspError as error:
            return web.json_response({"error": error.message}, status=error.status if isinstance(error, HttpRefusal) else 401)
        rows = await list_profiles(db, operator_id=operator.id, state=request.query.get("state"))
        return web.json_response({"profiles": rows})

    return handler


async def _openapi(_request: web.Request) -> web.Response:
    return web.json_response(json.loads(OPENAPI.read_text()))
