"""The virtual eUICC's card interface on a local socket, for LPAs with a pluggable card transport.

Framing: the one of vsmartcard's virtual reader (vpcd) and virtual card (vpicc), so that a client
written for it, or vpcd itself, can drive this card. Every message in either direction is

    length (2 bytes, big-endian) || body

A body of one byte is a control message from the reader side, never answered except "get ATR":
``00`` power off, ``01`` power on, ``02`` reset (each closes every logical channel), ``04`` get ATR
(answered with the ATR). Any longer body is a command APDU, answered with the response APDU (data,
then SW1 SW2; see :mod:`smdp.euicc.apdu` for what the card understands). A body of zero or more
than 65535 bytes cannot occur; a zero-length frame closes the connection.

The card listens on TCP (loopback only: it holds test credentials, not something to expose) or on a
Unix socket; it serves one connection at a time, since a card has one reader. :func:`connect_out`
instead connects to a waiting reader (vpcd listens on port 35963), as a vpicc does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from smdp.euicc.apdu import IsdrCard

__all__ = ["CTRL_ATR", "CTRL_OFF", "CTRL_ON", "CTRL_RESET", "SocketAddress", "connect_out", "parse_address", "serve_card"]

log = logging.getLogger(__name__)

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0x00, 0x01, 0x02, 0x04
_LENGTH = struct.Struct(">H")


@dataclass(frozen=True)
class SocketAddress:
    """``tcp`` with host and port, or ``unix`` with a path."""

    kind: str
    host: str = ""
    port: int = 0
    path: Path | None = None

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.kind == "unix" else f"tcp:{self.host}:{self.port}"


def parse_address(text: str) -> SocketAddress:
    """``tcp:HOST:PORT``, ``HOST:PORT``, ``PORT`` (127.0.0.1) or ``unix:PATH``; ValueError otherwise.
    A TCP host must be a loopback address (or ``localhost``)."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise ValueError("unix: needs a path")
        return SocketAddress("unix", path=Path(text[5:]))
    rest = text[4:] if text.startswith("tcp:") else text
    host, _, port_text = rest.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: expected tcp:HOST:PORT or unix:PATH") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{host}: the card interface listens on loopback addresses only")
    return SocketAddress("tcp", host=host, port=port)


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        return await reader.readexactly(length) if length else None
    except asyncio.IncompleteReadError:
        return None


def _frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


async def run_session(card: IsdrCard, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Serve one connection until it closes; returns how many APDUs it exchanged."""
    apdus = 0
    try:
        while (body := await _read_frame(reader)) is not None:
            if len(body) == 1:
                if body[0] in (CTRL_OFF, CTRL_ON, CTRL_RESET):
                    card.reset()
                elif body[0] == CTRL_ATR:
                    writer.write(_frame(card.ATR))
                continue  # unknown control bytes are ignored, as vpicc does
            writer.write(_frame(card.transmit(body)))
            apdus += 1
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        card.reset()  # the next connection finds a freshly powered card
        writer.close()
    return apdus


async def serve_card(card: IsdrCard, address: SocketAddress) -> asyncio.Server:
    """Start listening; connections are served one after another (a second waits its turn)."""
    lock = asyncio.Lock()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with lock:
            count = await run_session(card, reader, writer)
            log.info("card connection closed after %d APDUs", count)

    if address.kind == "unix":
        assert address.path is not None
        if address.path.is_socket():
            address.path.unlink()  # a stale socket from an earlier run
        return await asyncio.start_unix_server(on_connection, path=str(address.path))
    return await asyncio.start_server(on_connection, host=address.host, port=address.port)


async def connect_out(card: IsdrCard, host: str, port: int) -> int:
    """Connect to a listening virtual reader (vpcd) and serve it until it disconnects."""
    reader, writer = await asyncio.open_connection(host, port)
    return await run_session(card, reader, writer)
