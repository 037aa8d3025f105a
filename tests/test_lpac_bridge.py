"""The lpac stdio bridge without lpac: lpac's recorded JSON requests answered from the card, its own
lines passed through unchanged, its exit status returned (lpac driver/apdu/stdio.c protocol)."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from smdp.euicc.apdu import IsdrCard
from smdp.euicc.lpac import LpacNotFound, StdioApduBridge, find_lpac, run_lpac
from tests.es9_tools import open_euicc

# lpac `chip info` (estkme-group/lpac 8f68d5c, LPAC_APDU=stdio): its requests, line for line.
RECORDED = [
    '{"type":"apdu","payload":{"func":"connect","param":null}}',
    '{"type":"apdu","payload":{"func":"logic_channel_open","param":"a0000005591010ffffffff8900000100"}}',
    '{"type":"apdu","payload":{"func":"transmit","param":"81e2910006bf3e035c015a"}}',
    '{"type":"apdu","payload":{"func":"transmit","param":"81c0000015"}}',
    '{"type":"apdu","payload":{"func":"logic_channel_close","param":"01"}}',
    '{"type":"apdu","payload":{"func":"disconnect","param":null}}',
]


@pytest.fixture
def card(tmp_path: Path, pki_manifest: Path) -> IsdrCard:
    return IsdrCard(open_euicc(tmp_path, pki_manifest))


def test_recorded_lpac_requests_get_the_replies_lpac_expects(card: IsdrCard) -> None:
    bridge = StdioApduBridge(card)
    replies = [json.loads(bridge.answer_line(line.encode()) or b"null") for line in RECORDED]
    assert [r["type"] for r in replies] == ["apdu"] * 6
    payloads = [r["payload"] for r in replies]
    assert payloads[0] == {"ecode": 0}
    assert payloads[1] == {"ecode": 1}  # the channel number
    assert payloads[2] == {"ecode": 0, "data": "6115"}
    eid = card.euicc.eid  # type: ignore[attr-defined]
    assert payloads[3] == {"ecode": 0, "data": f"BF3E125A10{eid}9000"}
    assert payloads[4] == {"ecode": 0} and payloads[5] == {"ecode": 0}
    assert card.open_channels == [0]


def test_logic_channel_open_of_an_unknown_aid_is_ecode_minus_1(card: IsdrCard) -> None:
    bridge = StdioApduBridge(card)
    assert bridge.answer({"func": "logic_channel_open", "param": "a000000087"}) == {"ecode": -1}
    assert card.open_channels == [0]  # the channel it opened was closed again


def test_malformed_requests_are_ecode_minus_1(card: IsdrCard) -> None:
    bridge = StdioApduBridge(card)
    assert bridge.answer({"func": "transmit", "param": "zz"}) == {"ecode": -1}
    assert bridge.answer({"func": "transmit", "param": None}) == {"ecode": -1}
    assert bridge.answer({"func": "format_card", "param": None}) == {"ecode": -1}


def test_lpac_output_lines_are_not_requests(card: IsdrCard) -> None:
    bridge = StdioApduBridge(card)
    for line in ['{"type":"progress","payload":{"code":0}}', '{"type":"lpa","payload":{}}', "not json", "[1]"]:
        assert bridge.answer_line(line.encode()) is None


FAKE_LPAC = """\
import json, sys
assert __import__("os").environ["LPAC_APDU"] == "stdio" and __import__("os").environ["LPAC_HTTP"] == "curl"
print('{"type":"progress","payload":{"code":0,"message":"fake","data":null}}', flush=True)
replies = []
for line in %r:
    print(line, flush=True)
    replies.append(json.loads(sys.stdin.readline()))
print(json.dumps({"type":"lpa","payload":{"code":0,"message":"success","data":replies}}), flush=True)
sys.exit(3)
"""


async def test_run_lpac_answers_passes_output_through_and_returns_the_exit_status(card: IsdrCard, tmp_path: Path) -> None:
    fake = tmp_path / "lpac"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_LPAC % (RECORDED,))
    fake.chmod(0o755)
    out = io.BytesIO()
    status = await run_lpac(card, find_lpac(str(fake)), ["chip", "info"], output=out)
    assert status == 3
    lines = out.getvalue().decode().splitlines()
    assert lines[0] == '{"type":"progress","payload":{"code":0,"message":"fake","data":null}}'
    replies = json.loads(lines[1])["payload"]["data"]
    assert [r["payload"]["ecode"] for r in replies] == [0, 1, 0, 0, 0, 0]
    assert len(lines) == 2  # the APDU requests were not passed through


def test_find_lpac_explains_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LPAC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LpacNotFound, match="--lpac"):
        find_lpac()
    with pytest.raises(LpacNotFound, match="not executable"):
        find_lpac(str(tmp_path / "nothing"))
    assert os.environ["PATH"] == str(tmp_path)
