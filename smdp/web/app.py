"""The aiohttp application: ES9+ (SGP.22 6.5.2) and ES2+ (6.5.1) routes, the admin API and its OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from smdp.rsp import es2
from smdp.rsp.status import REQUESTER_NOT_ALLOWED, UNKNOWN_REQUESTER, RspError
from smdp.services.download import DownloadService
from smdp.services.orders import OrderService
from smdp.services.profiles import list_profiles
from smdp.store import orders
from smdp.store.db import Database
from smdp.web.binding import json_function
from smdp.web.limits import LIMITS_KEY, Limits

ES9_PREFIX = "/gsma/rsp2/es9plus/"
ES2_PREFIX = "/gsma/rsp2/es2plus/"
OPENAPI = Path(__file__).with_name("openapi.json")


def make_app(
    download: DownloadService,
    ordering: OrderService | None = None,
    *,
    device: bool = True,
    operator: bool = True,
    limits: Limits | None = None,
) -> web.Application:
    """The application serving the device interface (ES9+) if ``device``, the operator interfaces (ES2+ and
    /admin; needs ``ordering``) if ``operator``, and /openapi.json always.  ``smdp serve --operator-port``
    runs one application of each kind on its own listener, so that ES2+ and /admin are not reachable on the
    device-facing port.  ``limits`` (the body-read timeout) are stored under LIMITS_KEY for the JSON binding."""
    app = web.Application(client_max_size=1024 * 1024)
    app[LIMITS_KEY] = limits or Limits()
    if device:
        _add_es9_routes(app, download)
    if operator and ordering is not None:
        authenticate = _es2_authenticator(ordering.db)
        es2_functions = {
            "downloadOrder": ordering.download_order,
            "confirmOrder": ordering.confirm_order,
            "cancelOrder": ordering.cancel_order,
            "releaseProfile": ordering.release_profile,
        }
        app.add_routes([web.post(ES2_PREFIX + n, json_function(fn, authenticate)) for n, fn in es2_functions.items()])
        app.add_routes([web.get("/admin/profiles", _admin_profiles(ordering.db))])
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


async def _bearer_operator(db: Database, request: web.Request) -> orders.Operator | None:
    """The operator whose API token the request presents; None if missing, malformed or unknown.  aiohttp
    decodes header bytes as UTF-8 with surrogate escapes, so anything but the token alphabet is refused here."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip(" \t")
    if scheme.lower() != "bearer" or not 0 < len(token) <= 512:
        return None
    if not all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in token):  # RFC 6750 b64token
        return None
    async with db.transaction() as session:
        return await orders.operator_by_token(session, token)


def _es2_authenticator(db: Database):  # type: ignore[no-untyped-def]
    """ES2+ callers present an API token (Authorization: Bearer); header.functionRequesterIdentifier must be
    the operator's name (SGP.22 6.5.1.3)."""

    async def authenticate(request: web.Request, body: dict[str, Any]) -> orders.Operator:
        requester, _call = es2.header(body)
        operator = await _bearer_operator(db, request)
        if operator is None:
            raise RspError(UNKNOWN_REQUESTER, "missing or unknown API token")
        if requester != operator.name:
            raise RspError(REQUESTER_NOT_ALLOWED, f"functionRequesterIdentifier {requester!r} is not this token's operator")
        return operator

    return authenticate


def _admin_profiles(db: Database):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        operator = await _bearer_operator(db, request)
        if operator is None:
            return web.json_response({"error": "missing or unknown API token"}, status=401)
        rows = await list_profiles(db, operator_id=operator.id, state=request.query.get("state"))
        return web.json_response({"profiles": rows})

    return handler


async def _openapi(_request: web.Request) -> web.Response:
    return web.json_response(json.loads(OPENAPI.read_text()))
