"""Connection limits and timeouts of the HTTPS listeners: what a slow, stalled or hostile peer may hold.

An SM-DP+ faces devices on real networks (mobile links that stall, captive portals, NAT boxes that drop
idle flows) and, on the Internet, scanners and slowloris-style clients.  Every resource a peer can hold is
bounded in time or in number:

============================  ===========================================================================
limit                          protects against
============================  ===========================================================================
``tls_handshake_timeout``      TCP connections that never finish (or never start) the TLS handshake
``tls_shutdown_timeout``       peers that never answer close_notify: the socket is aborted after it
``header_timeout``             slowloris: a request head (request line and headers) dripped byte by byte
``body_timeout``               a body shorter than its Content-Length (or an unfinished chunked body):
                               the request fails with 1.6/2.1 instead of holding a handler forever
``keepalive_timeout``          idle keep-alive connections between requests (aiohttp's default is an hour)
``max_connections``            descriptor and memory exhaustion: beyond it a listener closes new
                               connections at once, before spending a TLS handshake on them
``backlog``                    the kernel's queue of connections not yet accepted
============================  ===========================================================================

:class:`LimitedSite` is the aiohttp site that enforces the connection-level limits (aiohttp 3.x has no
handshake or header timeout of its own, no connection cap, and its TCPSite passes no handshake timeout to
``loop.create_server``): it accepts plain TCP, refuses connections beyond the cap before any TLS work, then
runs the TLS handshake itself (asyncio's TLS protocol, with the handshake and shutdown timeouts and a
smaller read buffer, see :class:`_ServerTLS`).  The keep-alive timeout is aiohttp's
(``AppRunner(keepalive_timeout=...)``, see :meth:`Limits.runner_kwargs`; aiohttp's own default is 3630 s in
3.14, 75 s in older releases); the body timeout is applied by :func:`smdp.web.binding.json_function`, which finds the
limits in the application under :data:`LIMITS_KEY`.  aiohttp's request-head limits (``max_line_size``,
``max_field_size`` 8190 bytes, ``max_headers`` 128) are kept as they are.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

try:
    from asyncio import sslproto
except ImportError:  # pragma: no cover - CPython has it
    sslproto = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds) and caps of the HTTPS listeners; every one has a safe default (see the module)."""

    #: TCP accepted → TLS handshake done.  A device on a slow link needs a few round trips; more than this
    #: is a stalled or hostile peer holding a socket and a handshake state.
    tls_handshake_timeout: float = 10.0
    #: After the server closes a TLS connection, how long it waits for the peer's close_notify.
    tls_shutdown_timeout: float = 5.0
    #: Connection established, or first byte of a request → its head (request line and headers) complete.
    #: Bounds slowloris clients, which drip a header byte now and then to keep a connection busy.
    header_timeout: float = 10.0
    #: Head complete → body complete (Content-Length reached, or the last chunk).  ES9+ bodies are a few KB.
    body_timeout: float = 10.0
    #: Idle time allowed between two requests on a keep-alive connection.
    keepalive_timeout: float = 30.0
    #: Concurrent connections per listener, counted from accept (TLS handshakes included).
    max_connections: int = 512
    #: Listen queue length (the kernel caps it at net.core.somaxconn).
    backlog: int = 128

    def __post_init__(self) -> None:
        for name in ("tls_handshake_timeout", "tls_shutdown_timeout", "header_timeout", "body_timeout", "keepalive_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.backlog < 1:
            raise ValueError("backlog must be at least 1")

    def runner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``web.AppRunner`` (passed on to each connection's aiohttp RequestHandler)."""
        return {"keepalive_timeout": self.keepalive_timeout}


#: Where :func:`smdp.web.app.make_app` stores the limits in the application (read by the JSON binding).
LIMITS_KEY = web.AppKey("smdp_limits", Limits)


class _Slot:
    """One connection's place under its listener's cap; released exactly once, whichever path ends it."""

    __slots__ = ("_held", "_site")

    def __init__(self, site: LimitedSite) -> None:
        self._site = site
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._site._released()


class _Gate(asyncio.Protocol):
    """The first protocol of every accepted TCP connection: applies the cap, then starts the TLS handshake.

    Refusing here costs one accept and one close: no handshake is spent on a connection over the cap."""

    def __init__(self, site: LimitedSite) -> None:
        self._site = site
        self._slot: _Slot | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._slot = self._site._acquire()
        if self._slot is None:
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()
            return
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the ClientHello is for the TLS layer _start_tls puts in place
        self._site._spawn(self._handshake(transport, self._slot))

    def data_received(self, data: bytes) -> None:  # reading is paused; nothing arrives here
        pass

    def connection_lost(self, exc: Exception | None) -> None:  # only before start_tls took the transport over
        if self._slot is not None:
            self._slot.release()

    async def _handshake(self, transport: asyncio.Transport, slot: _Slot) -> None:
        site = self._site
        server = site._runner.server
        if server is None or transport.is_closing():
            slot.release()
            transport.abort()
            return
        connection = _Connection(server(), site._limits, slot)
        assert site._ssl_context is not None
        try:
            await _start_tls(transport, connection, site._ssl_context, site._limits)
        except asyncio.CancelledError:
            slot.release()
            transport.abort()
            raise
        except Exception as exc:  # noqa: BLE001 - handshake timeout, a scanner, a client that hung up, a TLS alert
            slot.release()
            transport.abort()
            log.debug("TLS handshake failed: %r", exc)
            return
        if not connection.connected:  # lost as the handshake completed: asyncio reports no error then
            slot.release()


class _ServerTLS(sslproto.SSLProtocol if sslproto is not None else object):  # type: ignore[misc]
    """asyncio's TLS protocol with a 32 KiB read buffer instead of 256 KiB (``SSLProtocol.max_size``, which
    every connection allocates and fills at once).  A TLS record is at most 16 KiB and ES9+ requests are a
    few KB, so nothing is lost; the saving is what lets ``max_connections`` idle TLS connections fit in
    tens of MB rather than hundreds (measured by tests/test_hardening_network.py)."""

    max_size = 32 * 1024


async def _start_tls(transport: asyncio.Transport, protocol: _Connection, context: ssl.SSLContext, limits: Limits) -> None:
    """Run the server side of the TLS handshake on an accepted connection (reading paused), within
    ``limits.tls_handshake_timeout``; ``protocol.connection_made`` is called when it completes.

    This is ``loop.start_tls`` with :class:`_ServerTLS` in place of asyncio's SSLProtocol (as the loop does
    for its own TLS servers); on another event loop implementation (uvloop) it is ``loop.start_tls``."""
    loop = asyncio.get_running_loop()
    if sslproto is None or not isinstance(loop, asyncio.BaseEventLoop) or not hasattr(transport, "set_protocol"):
        tls = await loop.start_tls(
            transport,
            protocol,
            context,
            server_side=True,
            ssl_handshake_timeout=limits.tls_handshake_timeout,
            ssl_shutdown_timeout=limits.tls_shutdown_timeout,
        )
        if tls is not None:
            protocol.connection_made(tls)
        return
    waiter = loop.create_future()
    tls_protocol = _ServerTLS(
        loop,
        protocol,
        context,
        waiter,
        server_side=True,
        call_connection_made=True,  # protocol.connection_made before any application data
        ssl_handshake_timeout=limits.tls_handshake_timeout,
        ssl_shutdown_timeout=limits.tls_shutdown_timeout,
    )
    transport.set_protocol(tls_protocol)
    tls_protocol.connection_made(transport)  # starts the handshake (and its timeout)
    transport.resume_reading()
    await waiter


class _Connection(asyncio.Protocol):
    """Sits between the TLS transport and aiohttp's RequestHandler: frees the connection's slot when it
    ends and enforces the header timeout (aiohttp has none).

    A request head must be complete within ``header_timeout`` of the connection being established, and
    within ``header_timeout`` of the first byte of each later request on it.  Telling a partial head
    from body bytes uses two attributes of aiohttp's RequestHandler (``_request_count``, messages parsed so
    far, and ``_waiter``, pending while it waits for the next request); tests/test_hardening_network.py
    fails if a new aiohttp changes them."""

    def __init__(self, handler: Any, limits: Limits, slot: _Slot) -> None:
        self._handler = handler
        self._limits = limits
        self._slot = slot
        self._connected = False
        self._lost = False
        self._early: list[bytes] = []  # with loop.start_tls: data delivered before it returned (connection_made)
        self._early_eof = False
        self._head_timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        return self._connected

    # --- the asyncio protocol, forwarded -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._lost or self._connected:
            return
        self._connected = True
        self._handler.connection_made(transport)
        self._arm_head_timer()
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)
        if self._early_eof:
            self._handler.eof_received()

    def data_received(self, data: bytes) -> None:
        if not self._connected:
            self._early.append(data)
            return
        handler = self._handler
        before = getattr(handler, "_request_count", 0)
        handler.data_received(data)
        if handler.transport is None:
            self._cancel_head_timer()
        elif getattr(handler, "_request_count", 0) != before:
            self._cancel_head_timer()  # a head is complete: the request is aiohttp's (and the body timeout's)
        elif self._awaiting_head():
            self._arm_head_timer()  # the first bytes of a new request's head (or more of one already timed)

    def eof_received(self) -> bool | None:
        if not self._connected:
            self._early_eof = True
            return None
        return self._handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._slot.release()
        if self._connected and not self._lost:
            self._handler.connection_lost(exc)
        self._lost = True

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    # --- the header timeout --------------------------------------------------------------------------

    def _awaiting_head(self) -> bool:
        handler = self._handler
        if getattr(handler, "_request_count", 1) == 0:
            return True  # nothing parsed yet on this connection
        waiter = getattr(handler, "_waiter", None)
        return waiter is not None and not waiter.done()  # idle between requests

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = asyncio.get_running_loop().call_later(self._limits.header_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        handler = self._handler
        if handler.transport is not None and self._awaiting_head():
            log.debug("no complete request head within %g s: closing the connection", self._limits.header_timeout)
            handler.force_close()


class LimitedSite(web.BaseSite):
    """An HTTPS listener for an aiohttp runner that enforces :class:`Limits` (a ``web.TCPSite`` does not).

    ``connections``, ``peak`` and ``refused`` report the cap's state (connections open now, the most at
    once, and how many were refused)."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *, ssl_context: ssl.SSLContext, limits: Limits) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=limits.backlog)
        self._host = host
        self._port = port
        self._limits = limits
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.peak = 0
        self.refused = 0
        self._full = False

    @property
    def name(self) -> str:
        host = self._host or "0.0.0.0"
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def port(self) -> int:
        sockets = self._server.sockets if isinstance(self._server, asyncio.Server) else ()
        return sockets[0].getsockname()[1] if sockets else self._port

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Gate(self), self._host, self._port, backlog=self._backlog
        )

    async def stop(self) -> None:
        await super().stop()  # stop listening
        tasks, self._tasks = self._tasks, set()
        for task in tasks:  # handshakes under way: their connections are dropped
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the cap -------------------------------------------------------------------------------------

    def _acquire(self) -> _Slot | None:
        if self.connections >= self._limits.max_connections:
            self.refused += 1
            if not self._full:
                self._full = True
                log.warning("%s: %d connections open (the maximum): refusing new ones", self.name, self.connections)
            return None
        self.connections += 1
        self.peak = max(self.peak, self.connections)
        return _Slot(self)

    def _released(self) -> None:
        self.connections -= 1
        if self._full and self.connections < self._limits.max_connections * 0.9:
            self._full = False
            log.warning("%s: %d connections open: accepting again (%d refused so far)", self.name, self.connections, self.refused)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


__all__ = ["LIMITS_KEY", "LimitedSite", "Limits"]
