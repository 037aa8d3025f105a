"""The ISD-R's APDU interface (SGP.22 5.7.1 over ISO 7816-4 / GlobalPlatform STORE DATA): channels,
SELECT, block chaining, '61xx' and GET RESPONSE, status words; and lpac's recorded requests replayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from smdp.euicc.apdu import ISD_R_AID, SW, ApduError, ApduEs10Channel, IsdrCard, parse_command
from smdp.euicc.errors import EuiccCommandError
from smdp.euicc.euicc import VirtualEuicc


class FakeEuicc:
    """Records the joined ES10 commands; answers with a canned response or raises."""

    def __init__(self, response: bytes = b"", error: EuiccCommandError | None = None) -> None:
        self.requests: list[bytes] = []
        self.response = response
        self.error = error

    def process(self, request: bytes) -> bytes:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return self.response


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def selected_card(euicc: FakeEuicc) -> tuple[IsdrCard, int]:
    card = IsdrCard(euicc)
    opened = card.transmit(h("00 70 00 00 01"))
    assert sw(opened) == SW.OK
    channel = opened[0]
    assert card.transmit(bytes([channel, 0xA4, 0x04, 0x0C, 16]) + ISD_R_AID) == h("9000")
    return card, channel


# --- parsing --------------------------------------------------------------------------------------


def test_parse_command_reads_the_four_short_cases() -> None:
    assert parse_command(h("80 E2 91 00")).ne is None
    assert parse_command(h("80 C0 00 00 00")).ne == 256
    case3 = parse_command(h("81 E2 91 00 03 BF 2D 00"))
    assert (case3.channel, case3.data, case3.ne) == (1, h("BF2D00"), None)
    case4 = parse_command(h("80 E2 91 00 03 BF 2D 00 20"))
    assert (case4.data, case4.ne) == (h("BF2D00"), 32)


@pytest.mark.parametrize("apdu", ["80E291", "80E29100 05 BF2D00", "80E29100 00 0003 BF2D00", "80E29100 02 BF2D00 00 00"])
def test_parse_command_rejects_wrong_lengths_with_6700(apdu: str) -> None:
    with pytest.raises(ApduError) as raised:
        parse_command(h(apdu))
    assert raised.value.sw == SW.WRONG_LENGTH
    assert IsdrCard(FakeEuicc()).transmit(h(apdu)) == h("6700")


def test_cla_codes_channels_in_first_and_further_interindustry_classes() -> None:
    assert [parse_command(bytes([cla, 0xE2, 0x91, 0x00])).channel for cla in (0x80, 0x83, 0xC0, 0xCF, 0x41)] == [0, 3, 4, 19, 5]


# --- logical channels and SELECT ------------------------------------------------------------------


def test_manage_channel_opens_the_lowest_free_channel_and_closes_it() -> None:
    card = IsdrCard(FakeEuicc())
    assert card.transmit(h("0070000001")) == h("01 9000")
    assert card.transmit(h("0070000001")) == h("02 9000")
    assert card.transmit(h("00708001")) == h("9000")
    assert card.open_channels == [0, 2]
    assert card.transmit(h("0070000001")) == h("01 9000")


def test_manage_channel_refuses_to_close_the_basic_or_an_unopened_channel() -> None:
    card = IsdrCard(FakeEuicc())
    assert card.transmit(h("00708000")) == h("6A86")
    assert card.transmit(h("00708005")) == h("6A86")
    assert card.transmit(h("00704000")) == h("6A86")


def test_manage_channel_says_6a81_when_every_channel_is_open() -> None:
    card = IsdrCard(FakeEuicc())
    for _ in range(19):
        assert sw(card.transmit(h("0070000001"))) == SW.OK
    assert card.transmit(h("0070000001")) == h("6A81")


def test_command_on_a_closed_channel_is_6881() -> None:
    assert IsdrCard(FakeEuicc()).transmit(h("82 E2 91 00 03 BF2D00")) == h("6881")


def test_select_isd_r_returns_its_fci_with_61xx_then_get_response() -> None:
    card = IsdrCard(FakeEuicc())
    fci = h("6F 18 84 10") + ISD_R_AID + h("A5 04 9F65 01 FF")
    assert card.transmit(h("00 A4 04 00 10") + ISD_R_AID) == bytes([0x61, len(fci)])
    assert card.transmit(bytes([0x00, 0xC0, 0x00, 0x00, len(fci)])) == fci + h("9000")
    assert card.transmit(h("00 A4 04 00 10") + ISD_R_AID + h("00")) == fci + h("9000")


def test_select_of_an_unknown_aid_is_6a82_and_deselects() -> None:
    euicc = FakeEuicc(h("BF2D00"))
    card, channel = selected_card(euicc)
    assert card.transmit(bytes([channel, 0xA4, 0x04, 0x0C, 5]) + h("A000000087")) == h("6A82")
    assert card.transmit(bytes([0x80 | channel]) + h("E2 91 00 03 BF2D00")) == h("6985")


def test_store_data_before_select_is_6985() -> None:
    euicc = FakeEuicc()
    assert IsdrCard(euicc).transmit(h("80 E2 91 00 03 BF2D00")) == h("6985")
    assert euicc.requests == []


# --- STORE DATA chaining and the response --------------------------------------------------------


def test_store_data_blocks_are_joined_before_the_euicc_sees_them() -> None:
    euicc = FakeEuicc(h("BF2D 03 A0 01 00"))
    card, channel = selected_card(euicc)
    request = bytes(range(256)) * 2 + b"\x01"
    cla = 0x80 | channel
    blocks = [request[i : i + 255] for i in range(0, len(request), 255)]
    assert card.transmit(bytes([cla, 0xE2, 0x11, 0, 255]) + blocks[0]) == h("9000")
    assert card.transmit(bytes([cla, 0xE2, 0x11, 1, 255]) + blocks[1]) == h("9000")
    assert euicc.requests == []
    assert card.transmit(bytes([cla, 0xE2, 0x91, 2, len(blocks[2])]) + blocks[2]) == h("6106")
    assert euicc.requests == [request]
    assert card.transmit(bytes([cla, 0xC0, 0x00, 0x00, 0x06])) == h("BF2D03A00100 9000")


def test_block_number_out_of_sequence_is_6a86_and_drops_the_blocks() -> None:
    euicc = FakeEuicc()
    card, channel = selected_card(euicc)
    cla = 0x80 | channel
    assert card.transmit(bytes([cla]) + h("E2 11 00 02 BF2D")) == h("9000")
    assert card.transmit(bytes([cla]) + h("E2 91 02 01 00")) == h("6A86")
    assert card.transmit(bytes([cla]) + h("E2 91 01 01 00")) == h("6A86")  # the chain is gone
    assert euicc.requests == []


def test_block_zero_restarts_the_function() -> None:
    euicc = FakeEuicc()
    card, channel = selected_card(euicc)
    cla = 0x80 | channel
    assert card.transmit(bytes([cla]) + h("E2 11 00 02 BF22")) == h("9000")
    assert card.transmit(bytes([cla]) + h("E2 91 00 03 BF2D00")) == h("9000")
    assert euicc.requests == [h("BF2D00")]


@pytest.mark.parametrize("p1", [0x00, 0x01, 0x80, 0x90, 0x10])
def test_store_data_p1_other_than_11_or_91_is_6a86(p1: int) -> None:
    card, channel = selected_card(FakeEuicc())
    assert card.transmit(bytes([0x80 | channel, 0xE2, p1, 0x00, 0x03]) + h("BF2D00")) == h("6A86")


def test_long_response_comes_in_256_byte_pieces_with_6100() -> None:
    response = bytes(range(256)) * 2 + b"\xaa" * 10
    card, channel = selected_card(FakeEuicc(response))
    cla = 0x80 | channel
    assert card.transmit(bytes([cla]) + h("E2 91 00 03 BF2200")) == h("6100")
    assert card.transmit(bytes([cla]) + h("C0 00 00 00")) == response[:256] + h("6100")
    assert card.transmit(bytes([cla]) + h("C0 00 00 00")) == response[256:512] + h("610A")
    assert card.transmit(bytes([cla]) + h("C0 00 00 0A")) == response[512:] + h("9000")
    assert card.transmit(bytes([cla]) + h("C0 00 00 00")) == h("6985")


def test_case_4_store_data_returns_up_to_le_bytes_at_once() -> None:
    card, channel = selected_card(FakeEuicc(bytes(300)))
    assert card.transmit(bytes([0x80 | channel]) + h("E2 91 00 03 BF2200 00")) == bytes(256) + h("612C")


def test_another_command_discards_an_unfetched_response() -> None:
    card, channel = selected_card(FakeEuicc(h("BF2D03A00100")))
    cla = 0x80 | channel
    assert card.transmit(bytes([cla]) + h("E2 91 00 03 BF2D00")) == h("6106")
    assert card.transmit(bytes([cla]) + h("CA 00 5A 00")) == h("6D00")
    assert card.transmit(bytes([cla]) + h("C0 00 00 06")) == h("6985")


def test_responses_are_kept_per_channel() -> None:
    euicc = FakeEuicc(h("BF2D03A00100"))
    card, first = selected_card(euicc)
    second = card.transmit(h("0070000001"))[0]
    assert card.transmit(bytes([second, 0xA4, 0x04, 0x0C, 16]) + ISD_R_AID) == h("9000")
    assert card.transmit(bytes([0x80 | first]) + h("E2 91 00 03 BF2D00")) == h("6106")
    assert card.transmit(bytes([0x80 | second]) + h("C0 00 00 06")) == h("6985")
    assert card.transmit(bytes([0x80 | first]) + h("C0 00 00 06")) == h("BF2D03A00100 9000")


def test_empty_euicc_response_is_9000_without_data() -> None:
    card, channel = selected_card(FakeEuicc(b""))
    assert card.transmit(bytes([0x80 | channel]) + h("E2 91 00 03 A3 82 01")) == h("9000")


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00 E2 91 00 03 BF2D00", "6E00"),  # STORE DATA is not an ISO-class command
        ("FF E2 91 00 03 BF2D00", "6E00"),
        ("A0 E2 91 00 03 BF2D00", "6E00"),
        ("84 E2 91 00 03 BF2D00", "6882"),  # secure messaging
        ("90 E2 91 00 03 BF2D00", "6884"),  # ISO command chaining
        ("80 F2 40 00 02 4F00", "6D00"),  # GET STATUS: not offered
        ("80 C0 00 01 00", "6A86"),
    ],
)
def test_status_words_for_commands_the_card_does_not_take(apdu: str, expected: str) -> None:
    card = IsdrCard(FakeEuicc())
    card.transmit(h("00 A4 04 0C 10") + ISD_R_AID)
    assert card.transmit(h(apdu)) == h(expected)


def test_euicc_command_error_becomes_its_status_word() -> None:
    euicc = FakeEuicc(error=EuiccCommandError("no such function", EuiccCommandError.NOT_FOUND))
    card, channel = selected_card(euicc)
    assert card.transmit(bytes([0x80 | channel]) + h("E2 91 00 03 BF7F00")) == h("6A88")


def test_reset_closes_channels_and_deselects() -> None:
    card, channel = selected_card(FakeEuicc())
    assert card.reset() == IsdrCard.ATR
    assert card.open_channels == [0]
    assert card.transmit(bytes([0x80 | channel]) + h("E2 91 00 03 BF2D00")) == h("6881")


# --- with the virtual eUICC ----------------------------------------------------------------------


@pytest.fixture
def euicc(tmp_path: Path, pki_manifest: Path) -> VirtualEuicc:
    return VirtualEuicc.open(tmp_path / "euicc.json", manifest=pki_manifest, curve="nist")


# lpac `chip info` as it ran against smdp (estkme-group/lpac 8f68d5c, LPAC_APDU=stdio): the command
# APDUs on logical channel 1, each response fetched with GET RESPONSE Le = SW2.
LPAC_CHIP_INFO = ["81e2910006bf3e035c015a", "81e2910003bf3c00", "81e2910003bf4300", "81e2910003bf2200"]


def test_lpac_chip_info_requests_get_the_euicc_answers(euicc: VirtualEuicc) -> None:
    card = IsdrCard(euicc)
    assert card.transmit(h("0070000001")) == h("01 9000")
    assert card.transmit(h("01A4040C10") + ISD_R_AID) == h("9000")
    for command in LPAC_CHIP_INFO:
        expected = euicc.process(h(command)[5:])
        first = card.transmit(h(command))
        assert first == bytes([0x61, len(expected)])
        assert card.transmit(bytes([0x81, 0xC0, 0x00, 0x00, first[1]])) == expected + h("9000")
    assert expected[:2] == h("BF22")
    assert card.transmit(h(LPAC_CHIP_INFO[0]))  # GetEID: 'BF3E' '5A' EID
    eid = card.transmit(h("81C0000015"))
    assert eid == h("BF3E12 5A10") + h(euicc.eid) + h("9000")
    assert card.transmit(h(LPAC_CHIP_INFO[1])) == h("6114")
    assert card.transmit(h("81C0000014")) == h("BF3C11 810F") + b"lpa.ds.gsma.com" + h("9000")


def test_unknown_es10_tag_is_6a88_and_garbage_is_6a80(euicc: VirtualEuicc) -> None:
    channel = ApduEs10Channel(IsdrCard(euicc).transmit)
    with pytest.raises(EuiccCommandError) as raised:
        channel.process(h("BF7F00"))
    assert raised.value.sw == 0x6A88
    with pytest.raises(EuiccCommandError) as raised:
        channel.process(h("BF2D 05 A0"))
    assert raised.value.sw in (0x6A80, 0x6A88)


def test_bpp_piece_without_a_prepared_session_is_6985(euicc: VirtualEuicc) -> None:
    channel = ApduEs10Channel(IsdrCard(euicc).transmit)
    with pytest.raises(EuiccCommandError) as raised:
        channel.process(h("A3 82 01 00"))
    assert raised.value.sw == SW.CONDITIONS_NOT_SATISFIED


def test_apdu_channel_uses_blocks_of_its_size(euicc: VirtualEuicc) -> None:
    channel = ApduEs10Channel(IsdrCard(euicc).transmit, block_size=16)
    request = h("BF3E035C015A")
    assert channel.process(request) == euicc.process(request)
    long = h("BF3F 23 80 21") + b"a" * 33  # SetDefaultDpAddress, 37 bytes: 38 bytes: blocks of 16, 16, 6
    before = len(channel.log)
    channel.process(long)
    commands = [c for c, _ in channel.log[before:] if c[1] == 0xE2]
    assert [(c[2], c[3], c[4]) for c in commands] == [(0x11, 0, 16), (0x11, 1, 16), (0x91, 2, 6)]
