"""Soak test: minutes of mixed valid and invalid traffic through the real gateway, watching
its memory and file descriptors for leaks. Not part of the test suite.

    python bench/soak.py --minutes 10
    python bench/soak.py --minutes 3 --json out.json

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

from gateway.config.hashes import hash_opaque, hash_secret
from gateway.oauth.keys import generate_key
from gateway.tools.certs import create_dev_certificates
from gateway.tools.payloads import make_payload_bytes

CLIENT_ID = "soak"
SECRET = "soak-secret-for-local-use-only"
OPAQUE = "soak-opaque-credential-" + "x" * 43  # local use only
SAMPLE_SECONDS = 10.0
WARMUP_SECONDS = 60.0
FLOOD_EVERY, FLOOD_SIZE = 20.0, 40
HOG_EVERY, HOG_SIZE, PER_ADDRESS = 30.0, 300, 256
# Status codes each kind of request may get; anything else is a failure of the run.
EXPECTED = {
    "valid": {200}, "forged_token": {401}, "malformed_token": {400, 401},
    "bad_payload": {400}, "wrong_type": {415}, "too_large": {413},
    # 503: the slow-hash pool is full (a guess flood is running); a refusal, not a failure.
    "wrong_secret": {401, 503},
    "bad_head": {400, 431}, "no_token": {401}, "impersonating_headers": {200},
    "log_forging": {404}, "expect_no_token": {401}, "http2_line": {505},
    "held_back_guess": {401, 503}, "guess_flood": {401, 503}, "opaque_token": {200},
}
IMPERSONATING = {
    "X_Gateway_Client_Id": "admin", "X_Forwarded_For": "10.9.9.9", "X-Real-IP": "10.9.9.9",
    "True-Client-IP": "10.9.9.9", "X-HTTP-Method-Override": "DELETE",
    "X-Original-URL": "/admin", "Remote-User": "admin", "X-SSL-Client-Verify": "SUCCESS",
}
FORGED_PATH = "/soak%0A2030-01-01T00:00:00.000Z%20access%20-%20admin%0D%1B%5B2J%E2%80%AE"


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
                     "credential_hash": hash_opaque(OPAQUE), "scopes": ["segments:write"]}],
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

    def __init__(self, port: int, context: ssl.SSLContext, seed: int, backend: int) -> None:
        self.base = f"https://localhost:{port}"
        self.backend = f"http://127.0.0.1:{backend}"
        self.port = port
        self.context = context
        self.random = random.Random(seed)
        self.token = ""
        self.counts: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.payloads = [make_payload_bytes(users, random.Random(users))
                         for users in (1, 10, 100)]
        # Held while a connection burst is open, so a sample never counts its descriptors.
        self.burst = asyncio.Lock()

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    def note(self, kind: str, status: int) -> None:
        self.counts[kind] += 1
        if status not in EXPECTED[kind]:
            self.unexpected[f"{kind}:{status}"] += 1

    def check_server(self, value: str | None) -> None:
        if value is not None and any(c.isdigit() for c in value):
            self.unexpected["server_version_disclosed"] += 1

    async def fetch_token(self, session: aiohttp.ClientSession, secret: str = SECRET,
                          opaque: str | None = None) -> int:
        basic = opaque or base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
        async with session.post(self.base + "/oauth2/token",
                                data={"grant_type": "client_credentials"},
                                headers={"Authorization": f"Basic {basic}"}) as response:
            body = await response.json()
            self.check_server(response.headers.get("Server"))
            if response.status == 200:
                self.token = body["access_token"]
            return response.status

    async def push(self, session: aiohttp.ClientSession, kind: str, *, token: str | None,
                   body: bytes, content_type: str = "application/json",
                   extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": content_type, **(extra or {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with session.post(self.base + "/segments/aam", data=body,
                                headers=headers) as response:
            await response.read()
            self.check_server(response.headers.get("Server"))
            if kind in ("valid", "impersonating_headers") and response.status == 401:
                await self.fetch_token(session)  # IRIS's behaviour: refresh on 401
            self.note(kind, response.status)

    async def impersonate(self, session: aiohttp.ClientSession, body: bytes) -> None:
        await self.push(session, "impersonating_headers", token=self.token, body=body,
                        extra=IMPERSONATING)
        # The backend's last request (this one or another client's) must hold none of them.
        async with session.get(self.backend + "/_stats") as response:
            last = (await response.json()).get("last") or {}
        names = {name.lower() for name in last.get("headers", {})}
        if "_" in "".join(names) or names & {n.lower() for n in IMPERSONATING}:
            self.unexpected["impersonating_header_forwarded"] += 1

    async def raw(self, kind: str, data: bytes, *, answer: bool, then: bytes = b"") -> None:
        """A hand-made request (or garbage) on its own TLS connection; ``then`` is sent
        after a pause (a held-back body)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                       ssl=self.context,
                                                       server_hostname="localhost")
        try:
            writer.write(data)
            await writer.drain()
            if then:
                await asyncio.sleep(0.2)
                writer.write(then)
            if answer:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                self.note(kind, int(head.split(b" ")[1]))
                if b"aiohttp" in head or b"Python/" in head:
                    self.unexpected["server_version_disclosed"] += 1
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

    def guess_head(self) -> bytes:
        secret = base64.b64encode(f"{CLIENT_ID}:guess-{self.random.random()}".encode())
        return (b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + secret
                + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 29\r\n\r\n")

    async def one(self, session: aiohttp.ClientSession) -> None:
        roll = self.random.random()
        valid = self.random.choice(self.payloads)
        if roll < 0.50:
            await self.push(session, "valid", token=self.token, body=valid)
        elif roll < 0.56:
            forged = self.token[:-4] + ("AAAA" if not self.token.endswith("AAAA") else "BBBB")
            await self.push(session, "forged_token", token=forged, body=valid)
        elif roll < 0.60:
            await self.push(session, "malformed_token", token="not a token!", body=valid)
        elif roll < 0.64:
            await self.push(session, "no_token", token=None, body=valid)
        elif roll < 0.70:
            await self.push(session, "bad_payload", token=self.token,
                            body=valid.replace(b'"Status"', b'"Statuz"', 1))
        elif roll < 0.73:
            await self.push(session, "wrong_type", token=self.token, body=valid,
                            content_type="text/plain")
        elif roll < 0.75:
            await self.push(session, "too_large", token=self.token, body=b"x" * (2 << 20))
        elif roll < 0.77:
            self.note("wrong_secret", await self.fetch_token(session, SECRET + "x"))
        elif roll < 0.81:
            await self.raw("bad_head", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\nX-A: \x00"
                           b"\r\n\r\n", answer=True)
        elif roll < 0.84:
            await self.raw("bad_head", b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                           answer=True)
        elif roll < 0.86:
            await self.raw("abandoned", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\n",
                           answer=False)
        elif roll < 0.87:
            await self.garbage()
        elif roll < 0.90:
            await self.impersonate(session, valid)
        elif roll < 0.92:
            async with session.get(self.base + FORGED_PATH) as response:
                await response.read()
                self.note("log_forging", response.status)
        elif roll < 0.94:
            await self.raw("expect_no_token", b"POST /segments/aam HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                           b"Expect: 100-continue\r\n\r\n", answer=True)
        elif roll < 0.95:
            await self.raw("http2_line", b"GET /segments/aam HTTP/2.0\r\nHost: x\r\n\r\n",
                           answer=True)
        elif roll < 0.97:
            await self.raw("held_back_guess", self.guess_head(), answer=True,
                           then=b"grant_type=client_credentials")
        else:
            self.note("opaque_token", await self.fetch_token(session, opaque=OPAQUE))

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

    async def floods(self, until: float) -> None:
        """Every FLOOD_EVERY seconds, FLOOD_SIZE held-back slow-hash guesses at once."""
        while time.monotonic() + FLOOD_EVERY < until:
            await asyncio.sleep(FLOOD_EVERY)
            results = await asyncio.gather(*(
                self.raw("guess_flood", self.guess_head(), answer=True,
                         then=b"grant_type=client_credentials") for _ in range(FLOOD_SIZE)),
                return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    self.unexpected[f"client_error:{type(result).__name__}"] += 1

    async def hogs(self, until: float) -> None:
        """Every HOG_EVERY seconds one address (127.0.0.9) opens HOG_SIZE idle connections;
        at most PER_ADDRESS may stay open, the rest evicted oldest first."""
        while time.monotonic() + HOG_EVERY < until:
            await asyncio.sleep(HOG_EVERY)
            async with self.burst:
                streams = []
                try:
                    for _ in range(HOG_SIZE):
                        streams.append(await asyncio.open_connection(
                            "127.0.0.1", self.port, ssl=self.context,
                            server_hostname="localhost", local_addr=("127.0.0.9", 0)))
                    still = 0
                    for reader, _ in streams:
                        try:
                            data = await asyncio.wait_for(reader.read(1), 0.01)
                        except TimeoutError:
                            still += 1
                        else:
                            still += data != b""
                    self.counts["connection_hog"] += 1
                    if still > PER_ADDRESS:
                        self.unexpected[f"connection_hog:{still}_open"] += 1
                except OSError as exc:
                    self.unexpected[f"client_error:{type(exc).__name__}"] += 1
                finally:
                    for _, writer in streams:
                        writer.close()
                await asyncio.sleep(1.0)  # the gateway sees the closes before a sample


async def run(args: argparse.Namespace, gateway_pid: int, https: int, backend: int,
              context: ssl.SSLContext) -> tuple[list[Sample], Traffic]:
    traffic = Traffic(https, context, seed=args.seed, backend=backend)
    began = time.monotonic()
    until = began + args.minutes * 60
    workers = [asyncio.create_task(traffic.worker(until, keepalive=i % 4 != 0))
               for i in range(args.concurrency)]
    workers += [asyncio.create_task(traffic.floods(until)),
                asyncio.create_task(traffic.hogs(until))]
    samples: list[Sample] = []
    next_sample = began
    while time.monotonic() < until:
        async with traffic.burst:
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
            samples, traffic = asyncio.run(run(args, gateway.pid, https, backend, context))
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
