"""The OpenAPI document: kept in the repo, served by the server, valid, and covering every route."""

from __future__ import annotations

import json

import aiohttp
from openapi_spec_validator import validate

from smdp.web.app import OPENAPI
from tests.conftest import RunningServer


async def test_openapi_document_is_served_valid_and_complete(server: RunningServer) -> None:
    kept = json.loads(OPENAPI.read_text())
    validate(kept)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http,
        http.get(f"https://{server.address}/openapi.json") as response,
    ):
        assert response.status == 200
        assert await response.json() == kept
    from smdp.web.app import make_app

    app = make_app(server.download, server.runtime.ordering)  # type: ignore[attr-defined]
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    documented = {(method, path) for path, item in kept["paths"].items() for method in item}
    assert routes == documented
