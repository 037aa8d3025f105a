"""The card interface on a local socket (vpcd/vpicc framing: 2-byte length, then an APDU or a
one-byte control message), over TCP loopback and a Unix socket."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from smdp.euicc.apdu import ISD_R_AID, IsdrCard
from smdp.euicc.socket import CTRL_ATR, CTRL_RESET, SocketAddress, parse_address, serve_card
from tests.es9_tools import open_euicc


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> bytes:
    writer.write(struct.pack(">H", len(body)) + body)
    await writer.drain()
    (length,) = struct.unpack(">H", await reader.readexactly(2))
    return await reader.readexactly(length)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_socket_client_gets_atr_selects_isd_r_and_reads_the_eid(tmp_path: Path, pki_manifest: Path, kind: str) -> None:
    euicc = open_euicc(tmp_path, pki_manifest)
    address = SocketAddress("unix", path=tmp_path / "card.sock") if kind == "unix" else parse_address("tcp:127.0.0.1:0")
    server = await serve_card(IsdrCard(euicc), address)
    try:
        if kind == "unix":
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "card.sock"))
        else:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        assert await exchange(reader, writer, bytes([CTRL_ATR])) == IsdrCard.ATR
        assert await exchange(reader, writer, bytes.fromhex("0070000001")) == bytes.fromhex("019000")
        assert await exchange(reader, writer, bytes.fromhex("01A4040C10") + ISD_R_AID) == bytes.fromhex("9000")
        assert await exchange(reader, writer, bytes.fromhex("81E2910006BF3E035C015A00")) == (
            bytes.fromhex("BF3E125A10") + bytes.fromhex(euicc.eid) + bytes.fromhex("9000")
        )
        writer.write(struct.pack(">H", 1) + bytes([CTRL_RESET]))  # no answer; the channel is gone
        assert await exchange(reader, writer, bytes.fromhex("81E2910006BF3E035C015A00")) == bytes.fromhex("6881")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("text", ["tcp:10.0.0.1:5000", "0.0.0.0:5000", "tcp:127.0.0.1:x", "unix:"])
def test_socket_address_refuses_non_loopback_and_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_socket_address_forms() -> None:
    assert parse_address("4000") == SocketAddress("tcp", host="127.0.0.1", port=4000)
    assert parse_address("tcp:[::1]:4000") == SocketAddress("tcp", host="::1", port=4000)
    assert parse_address("unix:/tmp/x.sock") == SocketAddress("unix", path=Path("/tmp/x.sock"))
