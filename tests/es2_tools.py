"""Test tools for ES2+: an operator with a callback endpoint that records (and can refuse) progress events."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from smdp.operator_client import Es2Client, Es2Error
from smdp.services.operators import add_operator, set_callback
from tests.conftest import RunningServer


@dataclass
class CallbackEndpoint:
    """The operator's ES2+ endpoint: records HandleDownloadProgressInfo calls; fails the first `fail` ones."""

    fail: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        if self.refused < self.fail:
            self.refused += 1
            return web.Response(status=503)
        self.received.append(json.loads(await request.read()))
        return web.Response(status=204)

    def points(self) -> list[tuple[int, str]]:
        return [(e["notificationPointId"], e["notificationPointStatus"]["status"]) for e in self.received]


async def start_endpoint(stack: AsyncExitStack, endpoint: CallbackEndpoint) -> CallbackEndpoint:
    app = web.Application()
    app.router.add_post("/gsma/rsp2/es2plus/handleDownloadProgressInfo", endpoint.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return endpoint


async def operator_client(server: RunningServer, name: str, callback_url: str | None = None) -> Es2Client:
    token = await add_operator(server.db, name, callback_url)
    return Es2Client(f"https://{server.address}", token, name, insecure=True)


async def es2_error(coro: Any) -> tuple[str | None, str | None]:
    try:
        await coro
    except Es2Error as exc:
        return exc.subject_code, exc.reason_code
    raise AssertionError("the ES2+ call succeeded")


__all__ = ["CallbackEndpoint", "es2_error", "operator_client", "set_callback", "start_endpoint"]


async def operator_id(server: RunningServer, name: str) -> int:
    from smdp.store.operators import operator_by_name

    async with server.db.transaction() as db:
        operator = await operator_by_name(db, name)
    assert operator is not None and operator.id is not None
    return operator.id


_serial = iter(range(10**6))


async def stock_profiles(server: RunningServer, operator: str, count: int, profile_type: str = "demo", **kwargs: Any) -> list[str]:
    """``count`` Available profiles (small demo USIM profiles with unique ICCIDs) owned by ``operator``."""
    import os

    from smdp.profiles.demo import build_demo_profile
    from smdp.profiles.saip import luhn_check_digit
    from smdp.services.profiles import import_profile

    owner = await operator_id(server, operator)
    iccids = []
    for _ in range(count):
        body = f"8999{os.getpid() % 10000:04d}{next(_serial):010d}"
        iccid = body + luhn_check_digit(body)
        der = build_demo_profile(iccid, "001010000000009", os.urandom(16), os.urandom(16))
        await import_profile(server.db, der, stock=True, operator_id=owner, profile_type=profile_type, **kwargs)
        iccids.append(iccid)
    return iccids
