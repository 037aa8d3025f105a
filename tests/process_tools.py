"""``smdp`` as a user runs it: the CLI and `smdp serve` in subprocesses (shared by the process-level tests)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

REPO = Path(__file__).resolve().parents[1]
SMDP = [sys.executable, "-m", "smdp.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def smdp(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*SMDP, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    if check:
        assert result.returncode == 0, result.stderr
    return result


class Server:
    """`smdp serve` in a subprocess on 127.0.0.1 (``port``: a free one if None); waits for its banner and keeps
    what it printed: ``lines`` (stdout) and ``errors`` (stderr)."""

    def __init__(self, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process = subprocess.Popen(
            [*SMDP, "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        self.lines: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=collect_lines, args=(self.process.stdout, self.lines), daemon=True).start()
        threading.Thread(target=collect_lines, args=(self.process.stderr, self.errors), daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            if any("listening" in line for line in self.lines):  # the last line of the banner
                return
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"smdp serve did not start: {self.lines} {self.errors}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def collect_lines(stream: IO[str] | None, into: list[str]) -> None:
    assert stream is not None
    for line in stream:
        into.append(line.rstrip())


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts (append them); stopped when it ends."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """True once ``predicate()`` is (stderr lines arrive on their own thread, a moment after stdout's)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
