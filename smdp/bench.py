"""``smdp bench``: full downloads against an SM-DP+, with downloads/s, per-function latency and server CPU.

By default it starts its own ``smdp serve`` on a free loopback port in a temporary data directory, so
that the server's CPU time can be read from /proc; ``--server HOST:PORT --server-pid PID --data-dir DIR``
measures a server that is already running on that data directory instead.  The crypto floor of this
machine (sign, verify, ECDH, AES for one download) is measured in the same run, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from smdp.config import Settings, load_settings, master_sealer
from smdp.crypto.ecdsa import Curve
from smdp.crypto.floor import measure_crypto_floor
from smdp.euicc.euicc import VirtualEuicc
from smdp.lpa import es10
from smdp.lpa.download import download
from smdp.lpa.es9client import Es9Client
from smdp.profiles.demo import build_demo_profile
from smdp.profiles.saip import luhn_check_digit
from smdp.services.profiles import import_profile
from smdp.store.db import Database

MAX_SESSIONS = 100_000
MAX_SECONDS = 600  # a bench run stops by itself


class BenchError(Exception):
    """The bench can't run (no server, no download works); the message says why."""


class TimedClient(Es9Client):
    """An ES9+ client that records the latency of every call, per function."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latencies: dict[str, list[float]] = defaultdict(list)

    async def call(self, address: str, function: str, body: dict[str, Any]) -> dict[str, Any] | None:
        start = time.perf_counter()
        try:
            return await super().call(address, function, body)
        finally:
            self.latencies[function].append(time.perf_counter() - start)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start listening in time")


async def _bench_profile(settings: Settings) -> str:
    """A reusable profile (downloadable any number of times) for the run; returns its matching ID."""
    db = Database(settings.database_url)
    db.sealer = master_sealer(settings)
    await db.upgrade()
    serial = "8988247" + f"{int.from_bytes(os.urandom(5), 'big') % 10**11:011d}"
    iccid = serial + luhn_check_digit(serial)
    der = build_demo_profile(iccid=iccid, imsi="001010000000002", ki=os.urandom(16), opc=os.urandom(16))
    matching_id = "BENCH-" + os.urandom(6).hex().upper()
    await import_profile(db, der, matching_id=matching_id, reusable=True, sealer=master_sealer(settings))
    await db.dispose()
    return matching_id


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _run(args: argparse.Namespace, address: str, pid: int, data_dir: Path) -> dict[str, Any]:
    settings = load_settings(data_dir)
    matching_id = await _bench_profile(settings)
    code = f"LPA:1${address}${matching_id}"
    workdir = Path(tempfile.mkdtemp(prefix="smdp-bench-"))
    euiccs = [
        VirtualEuicc.open(workdir / f"euicc-{i}.json", manifest=settings.pki_manifest, curve=args.curve)
        for i in range(args.concurrency)
    ]
    client = TimedClient(insecure=True)
    try:
        return await _measure(args, code, euiccs, client, pid)
    finally:
        await client.close()


async def _measure(
    args: argparse.Namespace, code: str, euiccs: list[VirtualEuicc], client: TimedClient, pid: int
) -> dict[str, Any]:
    remaining = args.sessions
    failures: list[str] = []
    totals: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS

    async def worker(euicc: VirtualEuicc) -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            start = time.perf_counter()
            result = await download(euicc, code, client=client)
            if not result.ok or result.iccid is None:
                failures.append(f"{result.stage}: {result.subject_code}/{result.reason_code} {result.message}")
                continue
            totals.append(time.perf_counter() - start)  # successful downloads only
            es10.delete_profile(euicc, result.iccid)  # make room for the next download of the same profile
            for item in es10.list_notifications(euicc):
                es10.remove_notification(euicc, item.seq_number)

    warm_up = await download(euiccs[0], code, client=client)  # compiles, TLS session, caches
    if not warm_up.ok:
        raise BenchError(f"a first download failed at {warm_up.stage}: {warm_up.message}")
    for p in euiccs[0].installed_profiles():
        es10.delete_profile(euiccs[0], p.iccid)
    client.latencies.clear()
    cpu_before = _cpu_seconds(pid)
    wall_start = time.perf_counter()
    await asyncio.gather(*(worker(e) for e in euiccs))
    wall = time.perf_counter() - wall_start
    cpu = _cpu_seconds(pid) - cpu_before
    done = len(totals)
    return {
        "curve": args.curve,
        "sessions": done,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "concurrency": args.concurrency,
        "wall_s": round(wall, 3),
        "downloads_per_s": round(done / wall, 1) if wall else 0.0,
        "download_latency_ms": {"p50": round(_percentile(totals, 0.5) * 1000, 1), "p99": round(_percentile(totals, 0.99) * 1000, 1)}
        if totals
        else None,
        "latency_ms": {
            fn: {"p50": round(_percentile(v, 0.5) * 1000, 2), "p99": round(_percentile(v, 0.99) * 1000, 2), "n": len(v)}
            for fn, v in client.latencies.items()
        },
        "server_cpu_ms_per_download": round(cpu * 1000 / done, 2) if done else None,
        "crypto_floor_ms": {k: round(v, 3) for k, v in measure_crypto_floor(Curve(args.curve), 200).items()},
    }


async def cmd_bench(args: argparse.Namespace) -> int:
    if not 1 <= args.sessions <= MAX_SESSIONS or not 1 <= args.concurrency <= 256:
        print(f"smdp: --sessions must be 1..{MAX_SESSIONS} and --concurrency 1..256", file=sys.stderr)
        return 2
    process = None
    if args.server:
        if not (args.server_pid and args.data_dir):
            print("smdp: --server needs --server-pid and --data-dir (the server's) to measure it", file=sys.stderr)
            return 2
        address, pid, data_dir = args.server, args.server_pid, Path(args.data_dir)
    else:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="smdp-bench-data-"))
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "smdp.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        address, pid = f"127.0.0.1:{port}", process.pid
    try:
        if process is not None:
            await _wait_listening(int(address.rsplit(":", 1)[1]), process)
        report = await _run(args, address, pid, data_dir)
    except (BenchError, RuntimeError, OSError) as exc:
        print(f"smdp: bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    return 0 if report["failures"] == 0 else 1


def _print_report(r: dict[str, Any]) -> None:
    print(f"curve {r['curve']}: {r['sessions']} downloads, concurrency {r['concurrency']}, {r['failures']} failed")
    if r["first_failure"]:
        print(f"  first failure: {r['first_failure']}")
    if r["download_latency_ms"]:
        latency = r["download_latency_ms"]
        print(f"  {r['downloads_per_s']} downloads/s; download p50 {latency['p50']} ms, p99 {latency['p99']} ms")
    print(f"  server CPU per download: {r['server_cpu_ms_per_download']} ms")
    for fn, v in r["latency_ms"].items():
        print(f"  {fn:<24} p50 {v['p50']:>8.2f} ms   p99 {v['p99']:>8.2f} ms   (n={v['n']})")
    floor = r["crypto_floor_ms"]
    print("  crypto floor (CPU ms): " + ", ".join(f"{k} {v}" for k, v in floor.items()))


def add_bench_command(sub: Any, common: Any) -> None:
    bench = sub.add_parser("bench", help="full downloads against a server: downloads/s, latency, server CPU")
    common(bench, json_output=True)
    bench.add_argument("--sessions", type=int, default=200)
    bench.add_argument("--concurrency", type=int, default=8)
    bench.add_argument("--curve", choices=["nist", "brainpool"], default="nist")
    bench.add_argument("--server", help="HOST:PORT of a running server (default: start one)")
    bench.add_argument("--server-pid", type=int, help="its process ID, to read its CPU time")
    bench.set_defaults(handler=cmd_bench)
