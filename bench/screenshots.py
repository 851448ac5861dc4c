"""``python bench/screenshots.py``: the README's two pictures, docs/img/status-page.png and
docs/img/loadtest-report.png, made from a real run.

It starts the sample backend and ``gateway serve`` (a direct and a spool route, dev
certificates in a temporary folder) on loopback, pushes for a few seconds with the IRIS
simulator (``gateway loadtest --report``), makes one dead letter (the backend answers 422
to one spooled push) and a few refusals, waits until the status page's charts have points,
then lets headless Chromium (Debian's ``chromium``) take both screenshots. Everything it
started is stopped at the end. About 40 seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.hashes import hash_secret  # noqa: E402
from gateway.oauth.keys import generate_key  # noqa: E402
from gateway.tools.certs import create_dev_certificates, write_private  # noqa: E402
from gateway.tools.seed import SEED_PAYLOAD  # noqa: E402

SECRET = "screenshot-secret-not-for-production"
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars"]


def _start(argv: list[str], ready: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``gateway ARGV`` with its output in ``log`` (a pipe nobody reads would fill and
    block its writes); the first line that starts with ``ready``."""
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "gateway", *argv], text=True,
                                   stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        found = [x for x in log.read_text().splitlines() if x.startswith(ready)]
        if found:
            return process, found[0].strip()
        time.sleep(0.1)
    raise RuntimeError(f"{argv[0]} did not start: {log.read_text()[-500:]}")


def _config(work: Path, backend: str) -> Path:
    create_dev_certificates(work)
    write_private(work / "jwt.pem", generate_key("ES256"))
    route = {"path": "/segments/aam", "methods": ["POST"], "upstream": backend + "/segments/aam",
             "scope": "segments:write"}
    config = {
        "server": {"host": "127.0.0.1", "port": 0, "admin": {"host": "127.0.0.1", "port": 0},
                   "tls": {"cert_file": str(work / "server.crt"),
                           "key_file": str(work / "server.key")}},
        "tokens": {"issuer": "https://localhost:8443", "audience": "partner-api",
                   "algorithm": "ES256",
                   "keys": [{"kid": "k1", "private_key_file": str(work / "jwt.pem")}]},
        "clients": [{"client_id": "aam", "secret_hash": hash_secret(SECRET),
                     "scopes": ["segments:write"]}],
        "routes": [route, {**route, "path": "/segments/spooled", "delivery": "spool"}],
        "state": {"path": str(work / "state.db")},
        "spool": {"path": str(work / "spool.db"), "retry_initial_seconds": 0.2},
        "logging": {"level": "warning"},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def _traffic(https: int, backend: str, context: ssl.SSLContext) -> None:
    base = f"https://localhost:{https}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as client:
        async with client.post(base + "/oauth2/token", headers=_basic("aam", SECRET),
                               data={"grant_type": "client_credentials"}) as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with client.post(backend + "/_control", json={"status": 422}):
            pass
        async with client.post(base + "/segments/spooled", data=SEED_PAYLOAD, headers=headers):
            pass
        await asyncio.sleep(1.0)  # delivered once, refused: a dead letter
        async with client.post(backend + "/_control", json={"status": 200}):
            pass
        for _ in range(3):
            async with client.post(base + "/segments/aam", data=SEED_PAYLOAD):
                pass  # no token: 401, counted by reason
        async with client.post(base + "/oauth2/token", headers=_basic("aam", "wrong"),
                               data={"grant_type": "client_credentials"}):
            pass


def _shoot(url: str, path: Path, size: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is missing: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                        f"--screenshot={path}", url], check=True, timeout=60,
                       capture_output=True)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main() -> int:
    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gateway-shots-") as folder:
        work = Path(folder)
        backend, line = _start(["backend", "--port", "0"], "backend listening",
                               work / "backend.log")
        gateway = None
        try:
            url = line.split()[-1]
            gateway, line = _start(["serve", "-c", str(_config(work, url))], "gateway serving",
                                   work / "gateway.log")
            ports = dict(p.split("=") for p in line[line.index("(") + 1:-1].split(", "))
            context = ssl.create_default_context(cafile=str(work / "ca.crt"))
            asyncio.run(_traffic(int(ports["https"]), url, context))
            report = work / "report.html"
            load = subprocess.run(
                [sys.executable, "-m", "gateway", "loadtest",
                 f"https://localhost:{ports['https']}/segments/aam", "--ca",
                 str(work / "ca.crt"), "--client-id", "aam", "--secret", SECRET,
                 "--duration", "12", "--rate", "150", "--concurrency", "8", "--json",
                 "--report", str(report)], capture_output=True, text=True, timeout=60)
            print("load test:", json.loads(load.stdout)["requests_per_s"], "req/s")
            _shoot(report.as_uri(), out / "loadtest-report.png", "1000,1300")
            _shoot(f"http://127.0.0.1:{ports['admin']}/", out / "status-page.png", "1200,1150")
        finally:
            for process in (gateway, backend):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
