"""The ISD-R's APDU interface: ISO/IEC 7816-4 and GlobalPlatform framing of ES10 (SGP.22 5.7.1).

SGP.22 section 5.7.1 carries every ES10a/b/c function in GlobalPlatform STORE DATA (CLA '80', INS
'E2') on a logical channel on which the ISD-R has been selected by AID. This module is that front
end, on top of any object with ``process(request_der) -> response_der`` (the virtual eUICC):

- MANAGE CHANNEL open/close (ISO 7816-4 11.1.2) and the logical channel number in CLA (first
  interindustry class: channels 0-3 in b2-b1; further interindustry: 4-19 in b4-b1 plus 4);
- SELECT by DF name (P1 '04') of the ISD-R AID, answered with a small FCI or, P2 '0C', without data;
- STORE DATA block chaining: P1 '11' (more blocks) or '91' (last block), P2 the block number from
  0 for each function, at most 255 bytes a block (short Lc); the blocks are joined and the ES10
  command goes to ``process`` after the last one;
- the response: with Le, up to Ne bytes at once; without Le (a case 3 command, as lpac sends STORE
  DATA) no data but '61xx'; the rest always with '61xx' and GET RESPONSE ('C0', CLA '00' or '80');
- status words: '6700' wrong length, '6A86' wrong P1/P2, '6D00' unknown INS, '6E00' unknown CLA,
  '6881' channel not open, '6882'/'6884' secure messaging or ISO chaining asked for, '6985'
  conditions of use not satisfied, '6A82' unknown AID, and what
  :class:`~smdp.euicc.errors.EuiccCommandError` carries for an ES10 command the eUICC rejects.

The intermediate LoadBoundProfilePackage commands answer '9000' with no data (``process`` returns
``b""``). The front end holds no protocol state beyond framing: every ES10 decision is the eUICC's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from smdp.euicc.errors import EuiccCommandError

__all__ = [
    "ISD_R_AID",
    "SW",
    "ApduError",
    "ApduEs10Channel",
    "Command",
    "Es10Processor",
    "IsdrCard",
    "parse_command",
]

log = logging.getLogger(__name__)

#: The ISD-R AID (SGP.22 2.2.3): the SGP.02 RID/PIX with instance '0100'.
ISD_R_AID = bytes.fromhex("A0000005591010FFFFFFFF8900000100")

#: Logical channels 0-19 (ISO 7816-4 5.4.2: 4 in the first interindustry class, 16 more in the further).
MAX_CHANNELS = 20
#: A joined ES10 command larger than this is refused (a BPP segment is at most 1020 bytes, the
#: largest other command, AuthenticateServer with two certificates, a few kilobytes).
MAX_COMMAND = 65535


class SW:
    """The status words this card answers with (ISO/IEC 7816-4 5.6, GlobalPlatform 11.11.3)."""

    OK = 0x9000
    MORE_DATA = 0x6100  # | number of bytes still available (00: 256 or more)
    WRONG_LENGTH = 0x6700
    CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    CHAINING_NOT_SUPPORTED = 0x6884  # ISO command chaining; STORE DATA has its own block chaining
    CONDITIONS_NOT_SATISFIED = 0x6985
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81  # e.g. no logical channel left
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    WRONG_P1P2 = 0x6A86
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


class Es10Processor(Protocol):
    """The eUICC behind the card interface: one ES10 command DER in, the response DER out."""

    def process(self, request: bytes) -> bytes: ...


class ApduError(Exception):
    """A command APDU refused with status word ``sw`` (no response data)."""

    def __init__(self, sw: int, message: str) -> None:
        super().__init__(message)
        self.sw = sw


@dataclass(frozen=True)
class Command:
    """A parsed short command APDU; ``ne`` is None for a command without Le (cases 1 and 3)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None

    @property
    def channel(self) -> int:
        """The logical channel named by CLA (ISO 7816-4 5.4.1)."""
        if self.cla & 0x40:  # further interindustry values: channels 4 to 19
            return 4 + (self.cla & 0x0F)
        return self.cla & 0x03

    @property
    def proprietary(self) -> bool:
        """b8 set: the GlobalPlatform class ('80'-'83', 'C0'-'CF') rather than the ISO one."""
        return bool(self.cla & 0x80)


def parse_command(apdu: bytes) -> Command:
    """Parse a short command APDU (ISO 7816-4 5.1); ApduError '6700' if its length fields are wrong.

    Extended length (Lc '00' followed by two bytes) is not offered: this card announces at most 255
    bytes a command, so such an APDU is a wrong length too.
    """
    apdu = bytes(apdu)
    if len(apdu) < 4:
        raise ApduError(SW.WRONG_LENGTH, f"command APDU of {len(apdu)} bytes")
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:  # case 1
        return Command(cla, ins, p1, p2)
    if len(body) == 1:  # case 2: Le only, '00' meaning 256
        return Command(cla, ins, p1, p2, ne=body[0] or 256)
    lc = body[0]
    if lc == 0:
        raise ApduError(SW.WRONG_LENGTH, "extended length APDUs are not supported")
    if len(body) == 1 + lc:  # case 3
        return Command(cla, ins, p1, p2, data=body[1:])
    if len(body) == 2 + lc:  # case 4
        return Command(cla, ins, p1, p2, data=body[1 : 1 + lc], ne=body[-1] or 256)
    raise ApduError(SW.WRONG_LENGTH, f"Lc {lc} does not match the {len(body) - 1} bytes that follow")


@dataclass
class _Channel:
    """What one logical channel remembers between APDUs."""

    selected: bool = False  # the ISD-R is selected on it
    blocks: list[bytes] = field(default_factory=list)  # STORE DATA blocks of the function so far
    pending: bytes = b""  # response data not yet fetched with GET RESPONSE


class IsdrCard:
    """The eUICC as a card: :meth:`transmit` takes one command APDU and returns data + SW1 SW2."""

    #: A minimal T=1 ATR (ISO 7816-3): direct convention, TD1 announcing T=1, no historical bytes,
    #: and TCK. Only transports that model a reader (the socket interface) show it.
    ATR = bytes.fromhex("3B80800101")

    def __init__(self, euicc: Es10Processor, *, aid: bytes = ISD_R_AID) -> None:
        self.euicc = euicc
        self.aid = bytes(aid)
        self._channels: dict[int, _Channel] = {}
        self.reset()

    # --- card-level events ------------------------------------------------------------------------

    def reset(self) -> bytes:
        """A card reset: only the basic channel stays open, nothing selected; returns the ATR."""
        self._channels = {0: _Channel()}
        return self.ATR

    @property
    def open_channels(self) -> list[int]:
        return sorted(self._channels)

    # --- APDU processing ----------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU; returns the response APDU (data, then SW1 SW2). Never raises."""
        try:
            data, sw = self._dispatch(parse_command(apdu))
        except ApduError as exc:
            log.debug("APDU %s refused with %04X: %s", bytes(apdu[:4]).hex(), exc.sw, exc)
            data, sw = b"", exc.sw
        return data + sw.to_bytes(2, "big")

    def _dispatch(self, command: Command) -> tuple[bytes, int]:
        cla = command.cla
        # ISO 7816-4 5.4.1: b7 set is the further interindustry coding (b6 secure messaging, b5
        # chaining); otherwise b6 must be clear ('2x', 'Ax' are RFU), b5 is chaining and b4-b3
        # secure messaging. b8 set is the GlobalPlatform (proprietary) class with the same layout.
        if cla == 0xFF or (not cla & 0x40 and cla & 0x20):
            raise ApduError(SW.CLA_NOT_SUPPORTED, f"class {cla:02X}")
        if (cla & 0x40 and cla & 0x20) or (not cla & 0x40 and cla & 0x0C):
            raise ApduError(SW.SECURE_MESSAGING_NOT_SUPPORTED, f"class {cla:02X} asks for secure messaging")
        if cla & 0x10:
            raise ApduError(SW.CHAINING_NOT_SUPPORTED, f"class {cla:02X} asks for ISO command chaining")
        channel = self._channels.get(command.channel)
        if channel is None:
            raise ApduError(SW.CHANNEL_NOT_SUPPORTED, f"logical channel {command.channel} is not open")
        if command.ins == 0xC0:
            return self._get_response(channel, command)
        # Any other command discards a response that was not fetched (ISO 7816-4 5.3.4).
        channel.pending = b""
        if command.ins == 0x70 and not command.proprietary:
            return self._manage_channel(command), SW.OK
        if command.ins == 0xA4 and not command.proprietary:
            return self._select(channel, command)
        if command.ins == 0xE2:
            if not command.proprietary:
                raise ApduError(SW.CLA_NOT_SUPPORTED, "STORE DATA is a GlobalPlatform command (CLA '8x')")
            return self._store_data(channel, command)
        raise ApduError(SW.INS_NOT_SUPPORTED, f"instruction {command.ins:02X}")

    def _respond(self, channel: _Channel, data: bytes, ne: int | None) -> tuple[bytes, int]:
        """Give up to Ne bytes now; keep the rest for GET RESPONSE and announce it with '61xx'."""
        now = data[: ne or 0]
        rest = data[len(now) :]
        channel.pending = rest
        if rest:
            return now, SW.MORE_DATA | (min(len(rest), 256) & 0xFF)
        return now, SW.OK

    def _get_response(self, channel: _Channel, command: Command) -> tuple[bytes, int]:
        if command.p1 or command.p2:
            raise ApduError(SW.WRONG_P1P2, "GET RESPONSE takes P1 P2 '0000'")
        if command.data:
            raise ApduError(SW.WRONG_LENGTH, "GET RESPONSE has no command data")
        if not channel.pending:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no response data to get")
        return self._respond(channel, channel.pending, command.ne or 256)

    def _manage_channel(self, command: Command) -> bytes:
        """MANAGE CHANNEL (ISO 7816-4 11.1.2): P1 '00' open (P2 '00': the card chooses), '80' close."""
        if command.p1 == 0x00:
            if command.data:
                raise ApduError(SW.WRONG_LENGTH, "MANAGE CHANNEL open has no command data")
            if command.p2 == 0x00:
                free = [n for n in range(1, MAX_CHANNELS) if n not in self._channels]
                if not free:
                    raise ApduError(SW.FUNCTION_NOT_SUPPORTED, "no logical channel left")
                self._channels[free[0]] = _Channel()
                return bytes([free[0]])
            if not 1 <= command.p2 < MAX_CHANNELS or command.p2 in self._channels:
                raise ApduError(SW.WRONG_P1P2, f"logical channel {command.p2} cannot be opened")
            self._channels[command.p2] = _Channel()
            return b""
        if command.p1 == 0x80:
            number = command.p2 or command.channel
            if command.data or command.ne is not None:
                raise ApduError(SW.WRONG_LENGTH, "MANAGE CHANNEL close has no data")
            if number == 0 or number not in self._channels:
                raise ApduError(SW.WRONG_P1P2, f"logical channel {number} cannot be closed")
            del self._channels[number]
            return b""
        raise ApduError(SW.WRONG_P1P2, f"MANAGE CHANNEL P1 {command.p1:02X}")

    def _select(self, channel: _Channel, command: Command) -> tuple[bytes, int]:
        """SELECT by DF name (ISO 7816-4 11.2.2); the ISD-R is the one application here. A right-
        truncated AID of at least 5 bytes (the RID) selects it too."""
        if command.p1 != 0x04 or command.p2 not in (0x00, 0x0C):
            raise ApduError(SW.WRONG_P1P2, f"SELECT P1 P2 {command.p1:02X}{command.p2:02X}")
        channel.selected = False
        channel.blocks = []
        if not 5 <= len(command.data) <= 16 or not self.aid.startswith(command.data):
            raise ApduError(SW.FILE_NOT_FOUND, f"no application {command.data.hex().upper()}")
        channel.selected = True
        if command.p2 == 0x0C:
            return b"", SW.OK
        return self._respond(channel, self.fci(), command.ne)

    def fci(self) -> bytes:
        """The FCI template of the ISD-R: its AID ('84') and, in the proprietary template ('A5'), the
        longest command data field it takes ('9F65', GlobalPlatform 11.1.7: 255)."""
        proprietary = bytes.fromhex("9F6501FF")
        body = bytes([0x84, len(self.aid)]) + self.aid + bytes([0xA5, len(proprietary)]) + proprietary
        return bytes([0x6F, len(body)]) + body

    def _store_data(self, channel: _Channel, command: Command) -> tuple[bytes, int]:
        """GlobalPlatform STORE DATA as SGP.22 5.7.1 uses it: P1 '11' more blocks, '91' the last."""
        if not channel.selected:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "the ISD-R is not selected on this channel")
        if command.p1 not in (0x11, 0x91):
            channel.blocks = []
            raise ApduError(SW.WRONG_P1P2, f"STORE DATA P1 {command.p1:02X}")
        if command.p2 == 0:
            channel.blocks = []  # block 0 always starts a new function
        elif command.p2 != len(channel.blocks):
            expected = len(channel.blocks)
            channel.blocks = []
            raise ApduError(SW.WRONG_P1P2, f"STORE DATA block {command.p2}, expected {expected}")
        if not command.data:
            channel.blocks = []
            raise ApduError(SW.WRONG_LENGTH, "STORE DATA without data")
        channel.blocks.append(command.data)
        if sum(map(len, channel.blocks)) > MAX_COMMAND:
            channel.blocks = []
            raise ApduError(SW.NOT_ENOUGH_MEMORY, "ES10 command too long")
        if command.p1 == 0x11:
            # '9000' and no data for a block that is not the last (the response comes at the end).
            return b"", SW.OK
        request, channel.blocks = b"".join(channel.blocks), []
        try:
            response = self.euicc.process(request)
        except EuiccCommandError as exc:
            raise ApduError(exc.sw, str(exc)) from None
        except Exception:  # a card answers, it does not crash: report it and answer '6F00'
            log.exception("ES10 command %s failed inside the eUICC", request[:3].hex())
            raise ApduError(SW.NO_PRECISE_DIAGNOSIS, "internal error") from None
        return self._respond(channel, response, command.ne)


class ApduEs10Channel:
    """The terminal's side of the same framing (what an LPA's card driver does, as lpac's
    ``euicc/euicc.c``): open a logical channel, select the ISD-R, send each ES10 command in STORE
    DATA blocks of at most ``block_size`` bytes and fetch '61xx' data with GET RESPONSE.

    ``transmit`` is any card (``IsdrCard.transmit``, a socket client). Its :meth:`process` makes it an
    ``smdp.lpa.es10.EuiccChannel``, so the test LPA can drive a card over APDUs. A status word other
    than '9000'/'61xx' raises :class:`EuiccCommandError` with that status word.
    """

    def __init__(self, transmit: Callable[[bytes], bytes], *, aid: bytes = ISD_R_AID, block_size: int = 120) -> None:
        if not 1 <= block_size <= 255:
            raise ValueError("a STORE DATA block holds 1 to 255 bytes")
        self._transmit = transmit
        self.block_size = block_size  # lpac's default ES10x MSS is 120
        self.log: list[tuple[bytes, bytes]] = []  # every (command, response) APDU, for tests
        data, sw = self._exchange(bytes.fromhex("0070000001"))
        if sw != SW.OK or len(data) != 1:
            raise EuiccCommandError(f"MANAGE CHANNEL open answered {sw:04X}", sw)
        self.channel = data[0]
        self.cla = self.channel if self.channel < 4 else 0x40 | (self.channel - 4)
        data, sw = self._exchange(bytes([self.cla, 0xA4, 0x04, 0x0C, len(aid)]) + aid)
        if sw != SW.OK:
            raise EuiccCommandError(f"SELECT ISD-R answered {sw:04X}", sw)

    def _exchange(self, command: bytes) -> tuple[bytes, int]:
        response = self._transmit(command)
        self.log.append((command, response))
        if len(response) < 2:
            raise EuiccCommandError("response APDU shorter than its status word", SW.NO_PRECISE_DIAGNOSIS)
        return response[:-2], int.from_bytes(response[-2:], "big")

    def process(self, request: bytes) -> bytes:
        """Send one ES10 command; its response DER (``b""`` for none)."""
        blocks = [request[i : i + self.block_size] for i in range(0, len(request), self.block_size)] or [b""]
        response = b""
        for number, block in enumerate(blocks):
            p1 = 0x91 if number == len(blocks) - 1 else 0x11
            data, sw = self._exchange(bytes([self.cla | 0x80, 0xE2, p1, number & 0xFF, len(block)]) + block)
            response += data
            while sw & 0xFF00 == SW.MORE_DATA:
                data, sw = self._exchange(bytes([self.cla | 0x80, 0xC0, 0x00, 0x00, sw & 0xFF]))
                response += data
            if sw != SW.OK:
                raise EuiccCommandError(f"STORE DATA answered {sw:04X}", sw)
        return response

    def close(self) -> None:
        self._exchange(bytes([0x00, 0x70, 0x80, self.channel]))
