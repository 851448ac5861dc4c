"""Soak test: minutes of mixed valid and invalid traffic through the real gateway, watching
its memory and file descriptors for leaks (issue 8). Not part of the test suite.

    python bench/soak.py --minutes 10           # the issue's run
    python bench/soak.py --minutes 3 --json out.json

The gateway (``gateway serve``) and the sample backend (``gateway backend``) run as
subprocesses on loopback with fresh development certificates and keys in a temporary
directory. Clients push valid batches (refreshing the token on 401) and mix in what an
attacker sends: forged and malformed tokens, invalid payloads, wrong media types, wrong
client secrets, oversized bodies, unparsable heads, abandoned heads and TLS garbage. Every
10 s the gateway's RSS (``/proc/PID/status``), its open descriptors (``/proc/PID/fd``) and
threads are sampled. asyncio task counts are not sampled: the gateway exposes none (its
``/metrics`` has no task gauge), and an idle-connection or task leak shows in the
descriptor count anyway.

Verdict: after the first minute (warm-up: pools, caches and allocator arenas fill), the
last samples may exceed the first steady ones by at most 10 % + 8 MiB of RSS and 16
descriptors. Exit status 0 when flat, 1 when not, 2 when the traffic itself went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import yaml

from gateway.config.hashes import hash_secret
from gateway.oauth.keys import generate_key
from gateway.tools.certs import create_dev_certificates
from gateway.tools.payloads import make_payload_bytes

CLIENT_ID = "soak"
SECRET = "soak-secret-for-local-use-only"
SAMPLE_SECONDS = 10.0
WARMUP_SECONDS = 60.0
# Status codes each kind of request may get; anything else is a failure of the run.
EXPECTED = {
    "valid": {200}, "forged_token": {401}, "malformed_token": {400, 401},
    "bad_payload": {400}, "wrong_type": {415}, "wrong_secret": {401}, "too_large": {413},
    "bad_head": {400, 431}, "no_token": {401},
}


@dataclass
class Sample:
    second: float
    rss_kib: int
    fds: int
    threads: int
    requests: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
                     "scopes": ["segments:write"]}],
        "routes": [{"path": "/segments/aam", "methods": ["POST"],
                    "upstream": f"http://127.0.0.1:{backend}/segments/aam",
                    "scope": "segments:write"}],
        "logging": {"format": "json", "level": "warning"},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


class Traffic:
    """The mixed clients; counts answers by kind and flags unexpected ones."""

    def __init__(self, port: int, context: ssl.SSLContext, seed: int) -> None:
        self.base = f"https://localhost:{port}"
        self.port = port
        self.context = context
        self.random = random.Random(seed)
        self.token = ""
        self.counts: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.payloads = [make_payload_bytes(users, random.Random(users))
                         for users in (1, 10, 100)]

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    def note(self, kind: str, status: int) -> None:
        self.counts[kind] += 1
        if status not in EXPECTED[kind]:
            self.unexpected[f"{kind}:{status}"] += 1

    async def fetch_token(self, session: aiohttp.ClientSession, secret: str = SECRET) -> int:
        basic = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
        async with session.post(self.base + "/oauth2/token",
                                data={"grant_type": "client_credentials"},
                                headers={"Authorization": f"Basic {basic}"}) as response:
            body = await response.json()
            if response.status == 200:
                self.token = body["access_token"]
            return response.status

    async def push(self, session: aiohttp.ClientSession, kind: str, *, token: str | None,
                   body: bytes, content_type: str = "application/json") -> None:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with session.post(self.base + "/segments/aam", data=body,
                                headers=headers) as response:
            await response.read()
            if kind == "valid" and response.status == 401:
                await self.fetch_token(session)  # IRIS's behaviour: refresh on 401
            self.note(kind, response.status)

    async def raw(self, kind: str, data: bytes, *, answer: bool) -> None:
        """A hand-made request (or garbage) on its own TLS connection."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                       ssl=self.context,
                                                       server_hostname="localhost")
        try:
            writer.write(data)
            await writer.drain()
            if answer:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                self.note(kind, int(head.split(b" ")[1]))
            else:
                self.counts[kind] += 1
        finally:
            writer.close()

    async def garbage(self) -> None:
        """Not TLS at all on the TLS port, or a head abandoned halfway."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(self.random.randbytes(512))
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 10)
        writer.close()
        self.counts["tls_garbage"] += 1

    async def one(self, session: aiohttp.ClientSession) -> None:
        roll = self.random.random()
        valid = self.random.choice(self.payloads)
        if roll < 0.55:
            await self.push(session, "valid", token=self.token, body=valid)
        elif roll < 0.62:
            forged = self.token[:-4] + ("AAAA" if not self.token.endswith("AAAA") else "BBBB")
            await self.push(session, "forged_token", token=forged, body=valid)
        elif roll < 0.67:
            await self.push(session, "malformed_token", token="not a token!", body=valid)
        elif roll < 0.72:
            await self.push(session, "no_token", token=None, body=valid)
        elif roll < 0.79:
            await self.push(session, "bad_payload", token=self.token,
                            body=valid.replace(b'"Status"', b'"Statuz"', 1))
        elif roll < 0.83:
            await self.push(session, "wrong_type", token=self.token, body=valid,
                            content_type="text/plain")
        elif roll < 0.85:
            await self.push(session, "too_large", token=self.token, body=b"x" * (2 << 20))
        elif roll < 0.87:
            self.note("wrong_secret", await self.fetch_token(session, SECRET + "x"))
        elif roll < 0.92:
            await self.raw("bad_head", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\nX-A: \x00"
                           b"\r\n\r\n", answer=True)
        elif roll < 0.96:
            await self.raw("bad_head", b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                           answer=True)
        elif roll < 0.98:
            await self.raw("abandoned", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\n",
                           answer=False)
        else:
            await self.garbage()

    async def worker(self, until: float, keepalive: bool) -> None:
        connector = aiohttp.TCPConnector(ssl=self.context, force_close=not keepalive)
        async with aiohttp.ClientSession(connector=connector) as session:
            if not self.token:
                await self.fetch_token(session)
            while time.monotonic() < until:
                try:
                    await self.one(session)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.unexpected[f"client_error:{type(exc).__name__}"] += 1


async def run(args: argparse.Namespace, gateway_pid: int, https: int,
              context: ssl.SSLContext) -> tuple[list[Sample], Traffic]:
    traffic = Traffic(https, context, seed=args.seed)
    began = time.monotonic()
    until = began + args.minutes * 60
    workers = [asyncio.create_task(traffic.worker(until, keepalive=i % 4 != 0))
               for i in range(args.concurrency)]
    samples: list[Sample] = []
    next_sample = began
    while time.monotonic() < until:
        rss, fds, threads = proc_figures(gateway_pid)
        sample = Sample(round(time.monotonic() - began, 1), rss, fds, threads, traffic.requests)
        samples.append(sample)
        print(f"{sample.second:7.1f}s  rss {rss / 1024:7.1f} MiB  fds {fds:4d}  "
              f"threads {threads:3d}  requests {sample.requests:8d}", flush=True)
        next_sample += SAMPLE_SECONDS
        await asyncio.sleep(max(0.0, min(next_sample, until) - time.monotonic()))
    await asyncio.gather(*workers)
    # A last sample once the clients are gone: idle connections must have been released.
    await asyncio.sleep(1.0)
    rss, fds, threads = proc_figures(gateway_pid)
    samples.append(Sample(round(time.monotonic() - began, 1), rss, fds, threads,
                          traffic.requests))
    print(f"{samples[-1].second:7.1f}s  rss {rss / 1024:7.1f} MiB  fds {fds:4d}  "
          f"threads {threads:3d}  (clients gone)", flush=True)
    return samples, traffic


def verdict(samples: list[Sample]) -> tuple[bool, str]:
    steady = [s for s in samples if s.second >= WARMUP_SECONDS]
    if len(steady) < 6:
        return False, "too few samples after the warm-up minute: run longer (--minutes 3+)"
    first, last = steady[:3], steady[-4:-1]  # the very last sample is after the clients left
    rss0, rss1 = statistics.median(s.rss_kib for s in first), max(s.rss_kib for s in last)
    fds0, fds1 = statistics.median(s.fds for s in first), max(s.fds for s in last)
    rss_ok = rss1 <= rss0 * 1.10 + 8 * 1024
    fds_ok = fds1 <= fds0 + 16
    idle_fds = samples[-1].fds
    text = (f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB "
            f"({'flat' if rss_ok else 'GROWING'}); descriptors {fds0:.0f} -> {fds1} "
            f"({'flat' if fds_ok else 'GROWING'}); {idle_fds} after the clients left")
    return rss_ok and fds_ok, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the samples and counts here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        directory = Path(tmp)
        https, admin, backend = free_port(), free_port(), free_port()
        config = write_setup(directory, https, admin, backend)
        procs = [
            subprocess.Popen([sys.executable, "-m", "gateway", "backend", "--port",
                              str(backend)], stdout=subprocess.DEVNULL),
        ]
        try:
            wait_port(backend, time.monotonic() + 15)
            gateway = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "-c",
                                        str(config)], stdout=subprocess.DEVNULL)
            procs.append(gateway)
            wait_port(https, time.monotonic() + 30)
            context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
            samples, traffic = asyncio.run(run(args, gateway.pid, https, context))
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    proc.kill()

    flat, text = verdict(samples)
    print("\nanswers by kind:", dict(sorted(traffic.counts.items())))
    print("unexpected:", dict(traffic.unexpected) or "none")
    print(f"verdict: {'FLAT' if flat else 'NOT FLAT'}: {text}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "minutes": args.minutes, "samples": [asdict(s) for s in samples],
            "counts": traffic.counts, "unexpected": traffic.unexpected,
            "flat": flat, "verdict": text}, indent=2))
    if traffic.unexpected:
        return 2
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
