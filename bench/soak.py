"""Soak test: mixed valid and invalid traffic through the real gateway, watching its memory
and file descriptors for leaks. Not part of the test suite.

    python bench/soak.py --minutes 10                    # ten minutes of mixed traffic
    python bench/soak.py --minutes 3 --json out.json
    python bench/soak.py --bursts 12                     # connection bursts only: RSS after each
    python bench/soak.py --requests 1000000 --wrk 32     # 10^6 requests, the RSS curve
    python bench/soak.py --requests 10000000 --wrk 32 --minutes 150   # the long run

``--wrk C`` adds a stream of valid pushes from wrk (one thread, C connections, Adobe's
sample push and 10-user messages, 10 s runs with a fresh token each) beside the Python clients,
which alone cannot send millions of requests in reasonable time; ``--requests N`` stops at
N answers (``--minutes`` still bounds the run). The report gives the RSS at every sample,
at each million, and the slope after the first million by least squares over each
minute's lowest sample, in MiB per million requests (flat: under 0.5).

The gateway (``gateway serve``) and the sample backend (``gateway backend``) run as
subprocesses on loopback with fresh development certificates and keys in a temporary
directory. Clients push valid batches (refreshing the token on 401) and mix in what an
attacker sends: forged and malformed tokens, invalid payloads, wrong media types, wrong
client secrets, oversized bodies, unparsable heads, abandoned heads and TLS garbage; and
what the outside attack run sent: token requests whose body is held back, pushes carrying
impersonating headers (``X_Gateway_Client_Id``, ``X-Real-IP``, ``X-HTTP-Method-Override``
…; the backend's last request is checked for any of them), log-forging paths (``%0A`` and
escapes), ``Expect: 100-continue`` without a token (the first answer must be the 401, not
``100``), ``HTTP/2.0`` request lines (``505``) and the opaque credential. Every 20 s a
flood of 40 held-back slow-hash guesses arrives at once (``401``, or ``503`` past the hash
pool's queue), and every 30 s one address opens 300 idle connections (no more than
``max_connections_per_address`` may stay open). Every ``Server`` header is checked for a
version. Every 10 s the gateway's RSS (``/proc/PID/status``), its open descriptors
(``/proc/PID/fd``) and threads are sampled, never while a connection burst is held.
asyncio task counts are not sampled: the gateway exposes none (its ``/metrics`` has no
task gauge), and an idle-connection or task leak shows in the descriptor count anyway.

Verdict: after the warm-up (the first minute, or the first half of a longer run: pools,
caches and allocator arenas fill), the last samples may exceed the first steady ones by at
most 10 % + 8 MiB of RSS and 16 descriptors. The connection bursts make the warm-up long:
each holds 300 TLS connections at once, whose buffers (256 KiB each in the event loop's
TLS layer) raise the allocator's high-water mark over several bursts before RSS levels off;
the gateway before the per-address cap did the same (``--bursts 12``, connection bursts
alone with RSS after each: 57 to 80 MiB now, 57 to 83 MiB before, each levelling off
within a few bursts). A leak keeps growing in the second half; a filling allocator does
not. Past two million requests
the slope after the first million must also be under 0.5 MiB per million. Exit status 0
when flat, 1 when not, 2 when the traffic itself went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import shlex
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import have_wrk, run_wrk, write_script
from procs import free_port, wait_port
from soak_traffic import CLIENT_ID, OPAQUE, SECRET, Traffic, connection_burst

from gateway.config.hashes import hash_opaque, hash_secret
from gateway.oauth.keys import generate_key
from gateway.tools.certs import create_dev_certificates
from gateway.tools.payloads import make_payload_bytes
from gateway.tools.seed import SEED_PAYLOAD

SAMPLE_SECONDS = 10.0
WARMUP_SECONDS = 60.0
SLOPE_LIMIT = 0.5  # MiB of RSS per million requests after the first million


@dataclass
class Sample:
    second: float
    rss_kib: int
    fds: int
    threads: int
    requests: int


def proc_figures(pid: int) -> tuple[int, int, int]:
    """(VmRSS in KiB, open descriptors, threads) of ``pid`` from /proc."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def write_setup(directory: Path, https: int, admin: int, backend: int) -> Path:
    create_dev_certificates(directory)
    (directory / "jwt.pem").write_bytes(generate_key("ES256"))
    config = {
        "server": {"host": "127.0.0.1", "port": https, "admin": {"host": "127.0.0.1",
                                                                  "port": admin},
                   "max_body_bytes": 1 << 20,
                   "tls": {"cert_file": "server.crt", "key_file": "server.key"}},
        "tokens": {"issuer": f"https://localhost:{https}", "audience": "partner-api",
                   "algorithm": "ES256", "failed_auth_per_minute": 100000,
                   "keys": [{"kid": "soak-1", "private_key_file": "jwt.pem"}]},
        "clients": [{"client_id": CLIENT_ID, "secret_hash": hash_secret(SECRET),
                     "credential_hash": hash_opaque(OPAQUE), "scopes": ["segments:write"]}],
        "routes": [{"path": "/segments/aam", "methods": ["POST"],
                    "upstream": f"http://127.0.0.1:{backend}/segments/aam",
                    "scope": "segments:write"}],
        "logging": {"format": "json", "level": "warning"},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def wrk_stream(traffic: Traffic, directory: Path, connections: int, until: float,
                     enough: int | None) -> None:
    """Valid pushes from wrk in SAMPLE_SECONDS runs, each with a fresh token, until
    ``until`` or ``enough`` answers in all."""
    rng = random.Random(10)
    bodies = [directory / "wrk-sample-push.json"]
    bodies[0].write_bytes(SEED_PAYLOAD)
    for index in range(3):
        bodies.append(directory / f"wrk-10-{index}.json")
        bodies[-1].write_bytes(make_payload_bytes(10, rng))
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    connector = aiohttp.TCPConnector(ssl=traffic.context)
    async with aiohttp.ClientSession(connector=connector) as session:
        while time.monotonic() < until - 1 and (enough is None or traffic.requests < enough):
            async with session.post(traffic.base + "/oauth2/token",
                                    data={"grant_type": "client_credentials"},
                                    headers={"Authorization": f"Basic {basic}"}) as answer:
                token = (await answer.json())["access_token"]
            script = write_script(directory / "soak.lua", method="POST",
                                  target="/segments/aam", bodies=bodies, headers={
                                      "Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})
            seconds = min(SAMPLE_SECONDS, until - time.monotonic())
            result = await asyncio.to_thread(run_wrk, traffic.base + "/segments/aam", script,
                                             connections=connections, seconds=seconds)
            traffic.counts["wrk_valid"] += result.requests - result.non_2xx
            if result.non_2xx or result.socket_errors:  # counted as answers, and flagged
                traffic.counts["wrk_other"] += result.non_2xx
                traffic.unexpected["wrk:non_2xx_or_socket_error"] += (result.non_2xx
                                                                     + result.socket_errors)


async def run(args: argparse.Namespace, gateway_pid: int, https: int, backend: int,
              context: ssl.SSLContext, directory: Path) -> tuple[list[Sample], Traffic]:
    traffic = Traffic(https, context, seed=args.seed, backend=backend)
    began = time.monotonic()
    until = began + args.minutes * 60
    workers = [asyncio.create_task(traffic.worker(until, keepalive=i % 4 != 0,
                                                  enough=args.requests))
               for i in range(args.concurrency)]
    # With --requests the floods and connection bursts stop with the rest; they went on
    # for the rest of --minutes otherwise (19 minutes past a 10^7 run once).
    workers += [asyncio.create_task(traffic.floods(until, args.requests)),
                asyncio.create_task(traffic.hogs(until, args.requests))]
    if args.wrk:
        workers.append(asyncio.create_task(
            wrk_stream(traffic, directory, args.wrk, until, args.requests)))
    samples: list[Sample] = []
    next_sample = began

    async def sample(note: str = "") -> None:
        async with traffic.burst:  # never while a connection burst holds descriptors
            rss, fds, threads = proc_figures(gateway_pid)
        samples.append(Sample(round(time.monotonic() - began, 1), rss, fds, threads,
                              traffic.requests))
        print(f"{samples[-1].second:7.1f}s  rss {rss / 1024:7.1f} MiB  fds {fds:4d}  "
              f"threads {threads:3d}  requests {traffic.requests:9d}{note}", flush=True)

    while time.monotonic() < until and not all(w.done() for w in workers):
        await sample()
        next_sample += SAMPLE_SECONDS
        await asyncio.sleep(max(0.0, min(next_sample, until) - time.monotonic()))
    await asyncio.gather(*workers)
    # A last sample once the clients are gone: idle connections must have been released.
    await asyncio.sleep(1.0)
    await sample("  (clients gone)")
    return samples, traffic


async def bursts(count: int, gateway_pid: int, https: int, context: ssl.SSLContext
                 ) -> list[int]:
    """RSS (MiB) at the start and after each of ``count`` connection bursts."""
    figures = [proc_figures(gateway_pid)[0] // 1024]
    for _ in range(count):
        await connection_burst(https, context)
        figures.append(proc_figures(gateway_pid)[0] // 1024)
    return figures


def slope(samples: list[Sample], after: int = 1_000_000) -> float | None:
    """MiB of RSS per million requests past ``after``: least squares over the lowest RSS of
    each minute (six samples), what the process keeps; the peaks of 1 MiB bodies in flight
    only ever add to a sample, so they do not pass for growth. None with too little data."""
    points = [s for s in samples[:-1] if s.requests >= after]
    size = int(60 / SAMPLE_SECONDS)
    minutes = [points[i:i + size] for i in range(0, len(points) - size + 1, size)]
    xs = [statistics.median(s.requests for s in m) / 1e6 for m in minutes]
    ys = [min(s.rss_kib for s in m) / 1024 for m in minutes]
    if len(xs) < 3 or xs[-1] - xs[0] < 0.5:
        return None
    return statistics.linear_regression(xs, ys).slope


def curve(samples: list[Sample]) -> list[tuple[int, float]]:
    """(requests, RSS MiB) at the first sample past each million."""
    marks: list[tuple[int, float]] = []
    for s in samples[:-1]:
        if s.requests >= len(marks) * 1_000_000:
            marks.append((s.requests, s.rss_kib / 1024))
    return marks


def verdict(samples: list[Sample]) -> tuple[bool, str]:
    warmup = max(WARMUP_SECONDS, samples[-1].second / 2) if samples else WARMUP_SECONDS
    steady = [s for s in samples if s.second >= warmup]
    if len(steady) < 6:
        return False, "too few samples after the warm-up: run longer (--minutes 3+)"
    first, last = steady[:3], steady[-4:-1]  # the very last sample is after the clients left
    rss0, rss1 = statistics.median(s.rss_kib for s in first), max(s.rss_kib for s in last)
    fds0, fds1 = statistics.median(s.fds for s in first), max(s.fds for s in last)
    rss_ok = rss1 <= rss0 * 1.10 + 8 * 1024
    fds_ok = fds1 <= fds0 + 16
    idle_fds = samples[-1].fds
    text = (f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB "
            f"({'flat' if rss_ok else 'GROWING'}); descriptors {fds0:.0f} -> {fds1} "
            f"({'flat' if fds_ok else 'GROWING'}); {idle_fds} after the clients left")
    per_million = slope(samples)
    slope_ok = True
    if per_million is not None and samples[-1].requests >= 2_000_000:
        slope_ok = per_million < SLOPE_LIMIT
        text += (f"; after the first million {per_million:+.2f} MiB per million requests "
                 f"({'flat' if slope_ok else 'GROWING'})")
    return rss_ok and fds_ok and slope_ok, text


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, and theirs (``--wrap``: the gateway under the wrapper)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float,
                        help="how long (default 10; with --requests, the bound: 180)")
    parser.add_argument("--requests", type=int, help="stop after this many answers")
    parser.add_argument("--concurrency", type=int, default=16, help="mixed Python clients")
    parser.add_argument("--wrk", type=int, default=0, metavar="C",
                        help="also push valid messages with wrk over C connections")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the samples and counts here")
    parser.add_argument("--bursts", type=int, default=0,
                        help="only this many connection bursts; print RSS after each")
    parser.add_argument("--wrap", default="", metavar="CMD",
                        help="start the gateway under CMD (e.g. 'heaptrack -o /tmp/gw'); "
                             "the RSS samples are then CMD's process, not the gateway's")
    args = parser.parse_args()
    if args.minutes is None:
        args.minutes = 180.0 if args.requests else 10.0
    if not (0 < args.minutes <= 24 * 60 and (args.requests is None or args.requests > 0)
            and 1 <= args.concurrency <= 512 and 0 <= args.wrk <= 1000):
        parser.error("bounds: 0 < --minutes <= 1440, --requests > 0, 1 <= --concurrency "
                     "<= 512, 0 <= --wrk <= 1000")
    if args.wrk and not have_wrk():
        parser.error("--wrk needs wrk (apt-get install wrk)")
    return args


def main() -> int:
    args = parse()
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        directory = Path(tmp)
        https, admin, backend = free_port(), free_port(), free_port()
        config = write_setup(directory, https, admin, backend)
        procs = [
            subprocess.Popen([sys.executable, "-m", "gateway", "backend", "--port",
                              str(backend)], stdout=subprocess.DEVNULL),
        ]
        try:
            wait_port(backend, 15)
            gateway = subprocess.Popen([*shlex.split(args.wrap), sys.executable, "-m",
                                        "gateway", "serve", "-c", str(config)],
                                       stdout=subprocess.DEVNULL)
            procs.append(gateway)
            wait_port(https, 30)
            context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
            if args.bursts:
                print("RSS MiB after each burst:", asyncio.run(
                    bursts(args.bursts, gateway.pid, https, context)))
                return 0
            samples, traffic = asyncio.run(run(args, gateway.pid, https, backend, context,
                                               directory))
        finally:
            for proc in reversed(procs):
                for pid in _descendants(proc.pid) if args.wrap and proc is procs[-1] else ():
                    with contextlib.suppress(OSError):  # the gateway under the wrapper
                        if b"gateway" in Path(f"/proc/{pid}/cmdline").read_bytes():
                            os.kill(pid, signal.SIGTERM)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    proc.kill()

    flat, text = verdict(samples)
    print("\nanswers by kind:", dict(sorted(traffic.counts.items())))
    print("unexpected:", dict(traffic.unexpected) or "none")
    print("RSS at each million:", ", ".join(f"{n / 1e6:.2f} M: {mib:.1f} MiB"
                                             for n, mib in curve(samples)))
    print(f"verdict: {'FLAT' if flat else 'NOT FLAT'}: {text}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "minutes": args.minutes, "requests": args.requests, "wrk": args.wrk,
            "samples": [asdict(s) for s in samples], "counts": traffic.counts,
            "unexpected": traffic.unexpected, "slope_mib_per_million": slope(samples),
            "flat": flat, "verdict": text}, indent=2))
    if traffic.unexpected:
        return 2
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
