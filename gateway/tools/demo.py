"""``gateway demo``: the whole flow on loopback, from nothing, in about ten seconds: Adobe's
sample token request and push byte for byte, an AEP batch (``demo_aep.py``), refusals, a
short load test with its HTML report, metrics and access-log lines, and a spool and a
fallback route riding out a stopped backend (``demo_spool.py``). Secrets are shortened.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import secrets
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from rich.console import Console

from gateway.config.hashes import hash_opaque, hash_secret
from gateway.tools.certs import create_dev_certificates, write_private
from gateway.tools.demo_aep import aep_config, aep_walkthrough
from gateway.tools.demo_spool import FALLBACK_PATH, SPOOL_PATH, spool_section, spool_walkthrough
from gateway.tools.loadtest import LoadReport, run_load
from gateway.tools.loadtest_html import write_report
from gateway.tools.loadtest_options import LoadOptions, basic_credential
from gateway.tools.payloads import make_payload_bytes
from gateway.tools.seed import SEED_CREDENTIAL, TOKEN_REQUEST, segment_request

__all__ = ["run_demo"]

DEMO_CLIENT = "aam-demo"


@dataclass
class _Processes:
    procs: list[subprocess.Popen[str]]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _short(secret: str) -> str:
    return secret[:10] + "…" if len(secret) > 12 else "…"


def _prepare(workdir: Path, console: Console, spool_redis: str | None
             ) -> tuple[Path, str, str]:
    """Certificates, a signing key and a demo config; returns (config path, demo secret,
    the AEP client's secret)."""
    certs = workdir / "certs"
    written = create_dev_certificates(certs)
    console.print(f"[bold]setup[/] dev certificates in {certs}: "
                  + ("created" if written else "present"))
    key_file = certs / "jwt-dev-1.pem"
    if not key_file.exists():
        from gateway.oauth.keys import generate_key

        write_private(key_file, generate_key("ES256"))
        console.print(f"[bold]setup[/] ES256 signing key {key_file}: created")
    demo_dir = workdir / "var" / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    aep_client, aep_route, aep_secret = aep_config()
    config = {
        "server": {"host": "127.0.0.1", "port": 0, "http_port": 0,
                   "tls": {"cert_file": str(certs / "server.crt"),
                           "key_file": str(certs / "server.key")},
                   "admin": {"host": "127.0.0.1", "port": 0}},
        "tokens": {"issuer": "https://localhost:8443", "audience": "partner-api",
                   "algorithm": "ES256",
                   "keys": [{"kid": "dev-1", "private_key_file": str(key_file)}]},
        "clients": [{"client_id": DEMO_CLIENT, "secret_hash": hash_secret(secret),
                     "credential_hash": hash_opaque(SEED_CREDENTIAL),
                     "scopes": ["segments:write"]}, aep_client],
        "routes": [{"path": "/segments/aam", "methods": ["POST", "GET"],
                    "upstream": "${BACKEND_URL}", "scope": "segments:write"},
                   {"path": SPOOL_PATH, "methods": ["POST"], "upstream": "${BACKEND_URL}",
                    "scope": "segments:write", "delivery": "spool"},
                   {"path": FALLBACK_PATH, "methods": ["POST"], "upstream": "${BACKEND_URL}",
                    "scope": "segments:write", "delivery": "fallback"}, aep_route],
        "state": {"path": str(demo_dir / "gateway.db")},
        "spool": spool_section(demo_dir, spool_redis),
        "logging": {"format": "json", "level": "info"},
    }
    path = demo_dir / "config.yaml"
    path.write_text("# Written by `gateway demo`; regenerated on every run.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    console.print(f"[bold]setup[/] demo client {DEMO_CLIENT!r} with a fresh secret "
                  f"({_short(secret)}) and Adobe's sample credential; config {path}")
    return path, secret, aep_secret


def _start(args: list[str], ready_prefix: str, env: dict[str, str]) -> tuple[
        subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"{args[0]} did not start: {err.strip()[-500:]}")
        if line.startswith(ready_prefix):
            return proc, line.strip()
    raise RuntimeError(f"{args[0]} did not start in 30 s")


def _ports(line: str) -> dict[str, int]:
    inside = line[line.index("(") + 1: line.rindex(")")]
    return {k: int(v) for k, v in (item.split("=") for item in inside.split(", "))}


async def _raw_exchange(port: int, request: bytes, context: ssl.SSLContext) -> tuple[
        str, dict[str, str], bytes]:
    """Send exact bytes over TLS; return (status line, headers, body decoded from gzip)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="localhost")
    writer.write(request)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status, *lines = head.strip().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return status, headers, body


def _show(console: Console, title: str, status: int | str, body: Any,
          headers: dict[str, str] | None = None) -> None:
    console.print(f"  [cyan]{title}[/] → [bold]{status}[/]"
                  + (f"  WWW-Authenticate: {headers['WWW-Authenticate']}"
                     if headers and "WWW-Authenticate" in headers else ""))
    console.print(f"    {json.dumps(body) if not isinstance(body, str) else body}")


async def _walkthrough(console: Console, ports: dict[str, int], backend: str,
                       context: ssl.SSLContext, secret: str, load_seconds: float,
                       aep_secret: str) -> LoadReport:
    https = f"https://localhost:{ports['https']}"
    console.rule("1. IRIS asks for a token: Adobe's sample request, byte for byte")
    status, headers, body = await _raw_exchange(ports["https"], TOKEN_REQUEST, context)
    token_answer = json.loads(body)
    token = token_answer["access_token"]
    console.print(f"  POST /oauth2/token (opaque Basic credential {_short(SEED_CREDENTIAL)}) "
                  f"→ [bold]{status}[/], Content-Encoding: {headers.get('content-encoding')}")
    shown = {**token_answer, "access_token": _short(token)}
    console.print(f"    {json.dumps(shown)}")

    console.rule("2. IRIS pushes segments: Adobe's sample GET with a JSON body, then a batch")
    status, _, body = await _raw_exchange(ports["https"], segment_request(token), context)
    console.print(f"  GET /segments/aam (Adobe's sample payload, 1 user) → [bold]{status}[/] "
                  f"{body.decode()}")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as client:
        batch = make_payload_bytes(1000, random.Random(7))  # noqa: S311 - sample data
        async with client.post(https + "/segments/aam", data=batch, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Accept-Encoding": "gzip"}) as response:
            console.print(f"  POST /segments/aam (1,000 users, {len(batch):,} bytes) → "
                          f"[bold]{response.status}[/] {(await response.text())}")
        async with client.get(backend + "/_stats") as response:
            stats = await response.json()
        last = (stats.get("last") or {}).get("headers", {})
        console.print(f"  the backend received {stats.get('requests')} requests; the last "
                      f"one's identity: X-Gateway-Client-Id={last.get('X-Gateway-Client-Id')}, "
                      f"Authorization forwarded: {'Authorization' in last}")
        await aep_walkthrough(console, https, client, aep_secret)

        console.rule("3. What the gateway refuses")
        async with client.post(https + "/segments/aam", data=batch,
                               headers={"Content-Type": "application/json"}) as response:
            _show(console, "no token", response.status, await response.json(),
                  dict(response.headers))
        async with client.post(https + "/segments/aam", data=b'{"Users": []}', headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json"}) as response:
            _show(console, "bad payload", response.status, await response.json())
        async with client.post(https + "/oauth2/token", data="grant_type=client_credentials",
                               headers={"Content-Type": "application/x-www-form-urlencoded",
                                        "Authorization": "Basic "
                                        + basic_credential(DEMO_CLIENT, "wrong")}) as response:
            _show(console, "wrong secret", response.status, await response.json(),
                  dict(response.headers))
        async with aiohttp.ClientSession() as plain, plain.post(
                f"http://127.0.0.1:{ports['http']}/oauth2/token",
                data="grant_type=client_credentials") as response:
            _show(console, "plain HTTP", response.status, await response.json())

    console.rule(f"4. The IRIS simulator: {load_seconds:g} s of pushes, 10 users each")
    report = await run_load(LoadOptions(
        url=https + "/segments/aam", credential=basic_credential(DEMO_CLIENT, secret),
        duration=load_seconds, concurrency=16, ssl_context=context,
        admin_url=f"http://127.0.0.1:{ports['admin']}"))
    report.render(console)
    return report


_METRICS_SHOWN = ("gateway_requests_total{", "gateway_tokens_issued_total{",
                  "gateway_auth_failures_total{", "gateway_token_cache_",
                  "gateway_payload_rejections", "gateway_upstream_duration_seconds_count")


async def _operations(console: Console, ports: dict[str, int], log: deque[str]) -> None:
    """5. What an operator watches: a few lines of /metrics and the access log."""
    console.rule(f"5. Operations: GET http://127.0.0.1:{ports['admin']}/metrics, and the "
                 "access log on the gateway's stdout")
    async with aiohttp.ClientSession() as plain, plain.get(
            f"http://127.0.0.1:{ports['admin']}/metrics") as response:
        text = await response.text()
    shown = [line for line in text.splitlines() if line.startswith(_METRICS_SHOWN)]
    for line in shown[:12]:
        console.print(f"  {line}", markup=False)
    await asyncio.sleep(0.2)  # the gateway writes its log lines in batches every 50 ms
    access = [line for line in list(log) if '"gateway.access"' in line]
    console.print("  the gateway's stdout: one JSON access-log line per request; the last three:")
    for line in access[-3:]:
        console.print(f"  {line}", markup=False)


def _drain(proc: subprocess.Popen[str], keep: deque[str]) -> threading.Thread:
    """Read the gateway's stdout to the end: an unread pipe would block its log writes."""
    stdout = proc.stdout
    assert stdout is not None
    thread = threading.Thread(target=lambda: keep.extend(x.rstrip("\n") for x in stdout),
                              daemon=True)
    thread.start()
    return thread


def run_demo(*, workdir: Path, load_seconds: float = 5.0,
             spool_redis: str | None = None) -> int:
    terminal = sys.stdout.isatty()
    # Into a pipe, lines stay whole (soft wrap): a JSON log line cut at a width won't parse.
    console = Console(highlight=False, width=None if terminal else 110, soft_wrap=not terminal)
    console.rule("[bold]aam-oauth-gateway demo")
    config, secret, aep_secret = _prepare(workdir.resolve(), console, spool_redis)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = _Processes([])
    try:
        backend_proc, line = _start(["backend", "--port", "0"], "backend listening", env)
        processes.procs.append(backend_proc)
        backend = line.split()[-1]
        console.print(f"[bold]started[/] sample backend {backend}")
        env["BACKEND_URL"] = backend + "/segments/aam"
        gateway_proc, line = _start(["serve", "-c", str(config)], "gateway serving", env)
        processes.procs.append(gateway_proc)
        ports = _ports(line)
        console.print(f"[bold]started[/] gateway https://localhost:{ports['https']} (plain-HTTP "
                      f"port {ports['http']}, status page http://127.0.0.1:{ports['admin']}/)")
        log: deque[str] = deque(maxlen=2000)
        _drain(gateway_proc, log)
        context = ssl.create_default_context(cafile=str(workdir / "certs" / "ca.crt"))
        report = asyncio.run(_walkthrough(console, ports, backend, context, secret,
                                          load_seconds, aep_secret))
        written = write_report(report, report.samples, workdir / "var/demo/loadtest.html")
        console.print(f"  the load test's HTML report: {written}")
        asyncio.run(_operations(console, ports, log))
        (record := workdir.resolve() / "var" / "demo" / "spooled.jsonl").unlink(missing_ok=True)

        def stop_backend() -> None:
            backend_proc.terminate()
            backend_proc.wait(timeout=10)

        def start_backend(path: Path) -> None:
            again, _ = _start(["backend", "--port", backend.rsplit(":", 1)[1],
                               "--record", str(path)], "backend listening", env)
            processes.procs.append(again)

        if not asyncio.run(spool_walkthrough(console, ports, context,
                                             basic_credential(DEMO_CLIENT, secret),
                                             stop_backend, start_backend, record)):
            console.print("[red]demo failed:[/] a spooled push was refused or did not arrive")
            return 1
    except (RuntimeError, OSError, aiohttp.ClientError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        processes.stop()
    console.rule("done: everything the demo started is stopped")
    return 0
