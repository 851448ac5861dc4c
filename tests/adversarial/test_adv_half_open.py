"""Half-open TLS under a low open-file limit (serve/acceptor.py; docs/operations.md, "Open
files"): the outside attack run held 1,000 sockets that never finished a TLS handshake from
one address against a gateway limited to 1,024 open files, and every push from every other
address failed, with nothing logged (uvloop's listener closed itself on EMFILE).

The real ``gateway serve`` process runs under ``prlimit --nofile=1024``, with real TLS on
loopback; the flood comes from 127.0.0.1 and the pushes from 127.0.0.2-5, which Linux
routes to loopback. Every wait is a deadline and the flood's sockets are closed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.tools.seed import SEED_PAYLOAD

from adv_harness import CLIENT_ID, CLIENT_SECRET, base_config, basic
from proc_harness import CapturedProcess

pytestmark = pytest.mark.slow

FLOOD = 1000
NOFILE = 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def limited_gateway(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path],
                          fast_secret_hash: str, backend: tuple[str, Any]
                          ) -> AsyncIterator[tuple[CapturedProcess, dict[str, int]]]:
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("prlimit (util-linux) is not installed")
    config = base_config(cert_dir, signing_keys, fast_secret_hash,
                         backend[0] + "/segments/aam")
    config["server"].update({"port": _free_port(), "http_port": None})
    config["server"]["admin"]["port"] = _free_port()
    config["tokens"]["failed_auth_per_minute"] = 100000
    config["state"] = {"path": str(tmp_path / "state.db")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    process = CapturedProcess([prlimit, f"--nofile={NOFILE}:{NOFILE}", sys.executable, "-m",
                               "gateway", "serve", "-c", str(path)])
    try:
        yield process, await process.serving(30)
    finally:
        process.kill()


async def _half_open(port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections from 127.0.0.1 that start a TLS handshake (one byte of a
    record header) and never finish it."""
    held: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            sock.send(b"\x16")
        except OSError:
            sock.close()  # the backlog was full: the kernel refused this one
            continue
        held.append(sock)
    return held


def _client(source: str, context: ssl.SSLContext) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=context, local_addr=(source, 0), force_close=True))


async def test_a_half_open_tls_flood_leaves_other_addresses_served(
        limited_gateway: tuple[CapturedProcess, dict[str, int]],
        client_ssl_ctx: ssl.SSLContext) -> None:
    gateway, ports = limited_gateway
    url = f"https://localhost:{ports['https']}"
    # The low limit is said at start, with the cap it leaves.
    warning = await gateway.wait_for(lambda: gateway.reason("low_open_file_limit"))
    assert warning[0]["nofile"] == NOFILE and warning[0]["max_connections"] < NOFILE // 2
    async with _client("127.0.0.2", client_ssl_ctx) as client, client.post(
            url + "/oauth2/token", data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}) as answer:
        assert answer.status == 200
        token = (await answer.json())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    flood: list[socket.socket] = []
    try:
        async with asyncio.timeout(60):
            flood = await _half_open(ports["https"], FLOOD)
            assert len(flood) > 900  # the flood really is there
            statuses = []
            for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5") * 5:
                async with _client(source, client_ssl_ctx) as client, client.post(
                        url + "/segments/aam", data=SEED_PAYLOAD, headers=headers) as answer:
                    statuses.append(answer.status)
            assert statuses == [200] * 20
            # The flooding address held at most its cap; the rest were closed at accept,
            # which was said (rate-limited), and the gateway never ran out of files.
            refused = await gateway.wait_for(lambda: gateway.reason("max_connections"))
            assert refused[0]["level"] == "warning"
            assert not gateway.reason("accept_out_of_files")
            assert gateway.process.poll() is None
    finally:
        for sock in flood:
            with contextlib.suppress(OSError):
                sock.close()
