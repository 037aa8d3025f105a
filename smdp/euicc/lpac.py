"""The lpac bridge: lpac's ``stdio`` APDU driver answered by the virtual eUICC's card interface.

lpac (estkme-group/lpac) with ``LPAC_APDU=stdio`` hands every card operation to its parent process
(``driver/apdu/stdio.c``): it writes one JSON object a line on its stdout,

    {"type":"apdu","payload":{"func":"connect"|"logic_channel_open"|"transmit"|
                                       "logic_channel_close"|"disconnect","param":HEX|null}}

and reads exactly one line on its stdin, ``{"type":"apdu","payload":{"ecode":INT,"data":HEX}}``.
``logic_channel_open`` carries the ISD-R AID and wants the channel number in ``ecode`` (lpac then
sends STORE DATA with that channel in CLA, ``euicc/euicc.c``), so the bridge itself opens the
channel and selects the AID through :class:`~smdp.euicc.apdu.IsdrCard`. ``transmit`` carries a
command APDU and wants the response APDU, SW1 SW2 included, in ``data``. A negative ``ecode`` is
lpac's "failed". Every other line lpac prints (``progress``, ``lpa``, ``notification`` ...) is its
own output and is passed through byte for byte.

With ``LPAC_HTTP=curl`` lpac talks ES9+ to the SM-DP+ itself; the bridge has no part in that.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from smdp.euicc.apdu import SW, IsdrCard

__all__ = ["LpacNotFound", "StdioApduBridge", "find_lpac", "run_lpac"]

# lpac's lines are short (an APDU is at most 261 bytes), but its own result lines (a profile list,
# EUICCInfo2) can be long: allow a generous line length.
_LINE_LIMIT = 16 * 1024 * 1024


class LpacNotFound(FileNotFoundError):
    """No lpac binary: neither the given path, nor ``$LPAC``, nor ``lpac`` on PATH."""


def find_lpac(path: str | None = None) -> Path:
    """The lpac binary to run: ``path``, else ``$LPAC``, else ``lpac`` on PATH."""
    candidate = path or os.environ.get("LPAC") or shutil.which("lpac")
    if not candidate:
        raise LpacNotFound("lpac not found: pass --lpac PATH, set LPAC, or put lpac on PATH")
    found = Path(candidate)
    if not found.is_file() or not os.access(found, os.X_OK):
        raise LpacNotFound(f"lpac not found or not executable at {found}")
    return found


class StdioApduBridge:
    """Answers lpac's stdio APDU driver requests from a card."""

    def __init__(self, card: IsdrCard) -> None:
        self.card = card
        self.exchanges = 0  # transmit requests answered, for tools and tests

    def answer(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The reply payload for one request payload (``func`` and ``param``)."""
        func = payload.get("func")
        param = payload.get("param")
        try:
            data = bytes.fromhex(param) if isinstance(param, str) else b""
        except ValueError:
            return {"ecode": -1}
        if func == "connect":
            self.card.reset()  # power on: basic channel only, nothing selected
            return {"ecode": 0}
        if func == "disconnect":
            self.card.reset()
            return {"ecode": 0}
        if func == "logic_channel_open":
            return {"ecode": self._open_channel(data)}
        if func == "logic_channel_close":
            if len(data) == 1 and data[0]:
                self.card.transmit(bytes([0x00, 0x70, 0x80, data[0]]))
            return {"ecode": 0}
        if func == "transmit":
            if not data:
                return {"ecode": -1}
            self.exchanges += 1
            return {"ecode": 0, "data": self.card.transmit(data).hex().upper()}
        return {"ecode": -1}

    def _open_channel(self, aid: bytes) -> int:
        """MANAGE CHANNEL open, then SELECT ``aid`` on the new channel; its number, or -1."""
        opened = self.card.transmit(bytes.fromhex("0070000001"))
        if len(opened) != 3 or opened[1:] != SW.OK.to_bytes(2, "big"):
            return -1
        channel = opened[0]
        cla = channel if channel < 4 else 0x40 | (channel - 4)
        selected = self.card.transmit(bytes([cla, 0xA4, 0x04, 0x0C, len(aid)]) + aid)
        if selected != SW.OK.to_bytes(2, "big"):
            self.card.transmit(bytes([0x00, 0x70, 0x80, channel]))
            return -1
        return channel

    def answer_line(self, line: bytes) -> bytes | None:
        """The reply line (with newline) if ``line`` is an APDU request, None if it is lpac output."""
        try:
            message = json.loads(line)
        except ValueError:
            return None
        if not isinstance(message, dict) or message.get("type") != "apdu":
            return None
        payload = message.get("payload")
        if not isinstance(payload, dict) or "func" not in payload:
            return None
        reply = {"type": "apdu", "payload": self.answer(payload)}
        return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


async def run_lpac(
    card: IsdrCard,
    lpac: Path,
    arguments: list[str],
    *,
    output: BinaryIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run lpac with ``arguments``, answer its APDUs from ``card``, copy its own output lines to
    ``output`` (default: our stdout) unchanged; returns lpac's exit status (128+N if killed by N)."""
    out = output if output is not None else sys.stdout.buffer
    environment = dict(os.environ if env is None else env)
    environment["LPAC_APDU"] = "stdio"
    environment["LPAC_HTTP"] = "curl"
    process = await asyncio.create_subprocess_exec(
        str(lpac),
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=environment,
        limit=_LINE_LIMIT,
    )
    assert process.stdin is not None and process.stdout is not None
    bridge = StdioApduBridge(card)
    try:
        while line := await process.stdout.readline():
            reply = bridge.answer_line(line)
            if reply is None:
                out.write(line)
                out.flush()
                continue
            try:
                process.stdin.write(reply)
                await process.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                break  # lpac exited before reading its reply: its exit status tells why
    except BaseException:
        if process.returncode is None:
            process.kill()  # interrupted: lpac must not outlive its card
        raise
    finally:
        if process.returncode is None:
            process.stdin.close()
        status = await process.wait()
    return status if status >= 0 else 128 - status
