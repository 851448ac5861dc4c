"""``gateway serve`` as a real process (README.md, docs/configuration.md, docs/architecture.md):
SIGHUP with a broken file keeps
serving, SIGHUP removing a client refuses its token within a second, and with
``workers: 2`` a revocation through one worker is refused by the other, a killed worker is
replaced, and SIGTERM drains an in-flight slow request. Every wait is bounded by a deadline
and every process started here is killed at the end."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import CLIENT_ID, CLIENT_SECRET, base_config, basic, fetch_token
from polling import until
from proc_harness import GatewayProcess

pytestmark = pytest.mark.slow




def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def launch(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path],
                 secret_hash: str, backend: tuple[str, web.Application]
                 ) -> AsyncIterator[Callable[..., Any]]:
    started: list[GatewayProcess] = []

    def _launch(workers: int = 1) -> tuple[GatewayProcess, dict[str, Any], Path]:
        config = base_config(cert_dir, signing_keys, secret_hash,
                             backend[0] + "/segments/aam")
        config["server"].update({"workers": workers, "port": _free_port(), "http_port": None})
        config["server"]["admin"]["port"] = _free_port()
        config["state"] = {"path": str(tmp_path / "state.db")}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        process = GatewayProcess(path)
        started.append(process)
        return process, config, path

    yield _launch
    for process in started:
        process.kill()


async def _push(port: int, ssl: Any, token: str, request_id: str | None = None,
                path: str = "/segments/aam") -> int:
    """One push on a fresh connection, so SO_REUSEPORT may pick either worker."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               **({"X-Request-Id": request_id} if request_id else {})}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl,
                                                                    force_close=True)) as c, \
            c.post(f"https://localhost:{port}{path}", data=SEED_PAYLOAD,
                   headers=headers) as response:
        await response.read()
        return response.status


async def test_sighup_with_a_broken_file_keeps_serving(launch: Any, session: Any,
                                                       client_ssl_ctx: Any) -> None:
    gateway, config, path = launch()
    port = (await gateway.serving())["https"]
    token = await fetch_token(session, port)
    config["routes"][0]["upstream"] = "ftp://nowhere"
    path.write_text(yaml.safe_dump(config))
    gateway.process.send_signal(signal.SIGHUP)
    refused = await gateway.wait_for(lambda: gateway.reason("reload_invalid"))
    assert "routes[0].upstream" in refused[0]["message"]
    assert await _push(port, client_ssl_ctx, token) == 200


async def test_sighup_moving_a_route_serves_the_new_path_and_404s_the_old(
        launch: Any, session: Any, client_ssl_ctx: Any) -> None:
    # The paths configured at start are plain resources of aiohttp's router (found by one
    # lookup), and the router cannot change after start: the old path must still 404 and
    # the new one, which only the catch-all sees, must serve.
    gateway, config, path = launch()
    port = (await gateway.serving())["https"]
    token = await fetch_token(session, port)
    assert await _push(port, client_ssl_ctx, token) == 200
    config["routes"][0]["path"] = "/segments/moved"
    path.write_text(yaml.safe_dump(config))
    gateway.process.send_signal(signal.SIGHUP)
    await gateway.wait_for(lambda: gateway.reason("reloaded"))
    assert await _push(port, client_ssl_ctx, token) == 404
    assert await _push(port, client_ssl_ctx, token, path="/segments/moved") == 200


async def test_sighup_removing_a_client_refuses_its_token_within_a_second(
        launch: Any, session: Any, client_ssl_ctx: Any) -> None:
    gateway, config, path = launch()
    port = (await gateway.serving())["https"]
    token = await fetch_token(session, port)
    assert await _push(port, client_ssl_ctx, token) == 200  # now in the token cache
    config["clients"] = [c for c in config["clients"] if c["client_id"] != CLIENT_ID]
    path.write_text(yaml.safe_dump(config))
    sent = time.monotonic()
    gateway.process.send_signal(signal.SIGHUP)
    while await _push(port, client_ssl_ctx, token) != 401:
        assert time.monotonic() - sent < 1.0, "the removed client's token still works"


async def test_two_workers_share_revocations_replace_the_dead_and_drain(
        launch: Any, session: Any, client_ssl_ctx: Any,
        backend: tuple[str, web.Application]) -> None:
    gateway, _, _ = launch(workers=2)
    ports = await gateway.serving()
    port = ports["https"]
    token = await fetch_token(session, port)

    def pid_of(request_id: str) -> int | None:
        return next((r["pid"] for r in gateway.records()
                     if r.get("request_id") == request_id), None)

    async def push_seen(request_id: str) -> tuple[int, int]:
        status = await _push(port, client_ssl_ctx, token, request_id)
        return status, await gateway.wait_for(lambda: pid_of(request_id), 5)

    # Fresh connections until both workers have answered (the kernel picks by hash).
    pids: set[int] = set()
    for i in range(200):
        status, pid = await push_seen(f"before-{i}")
        assert status == 200
        pids.add(pid)
        if len(pids) == 2:
            break
    assert len(pids) == 2

    async with session.post(f"https://localhost:{port}/oauth2/revoke",
                            data={"token": token},
                            headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}) as r:
        assert r.status == 200
    revoked_at = time.monotonic()
    refused_by: set[int] = set()
    for i in range(400):
        started = time.monotonic()
        status, pid = await push_seen(f"after-{i}")
        if started - revoked_at >= 1.0:
            assert status == 401, f"worker {pid} accepted a token revoked a second ago"
            refused_by.add(pid)
        if refused_by == pids:
            break
    assert refused_by == pids

    # A killed worker is replaced, and the admin listener counts the restart.
    victim = gateway.reason("worker_started")[0]
    os.kill(victim["pid"], signal.SIGKILL)
    await gateway.wait_for(lambda: len(gateway.reason("worker_started")) >= 3)
    fresh = await fetch_token(session, port)
    async with aiohttp.ClientSession() as plain:
        async def ready() -> bool:
            async with plain.get(f"http://127.0.0.1:{ports['admin']}/readyz") as response:
                return response.status == 200
        await until(ready, 10, "ready after the restart", interval=0.1)
        async with plain.get(f"http://127.0.0.1:{ports['admin']}/metrics") as response:
            assert "gateway_worker_restarts_total 1.0" in await response.text()

    # SIGTERM while a slow push is in flight: it completes with 200, then exit 0.
    app = backend[1]
    async with aiohttp.ClientSession() as plain:
        async with plain.post(backend[0] + "/_control", json={"delay": 1.5, "reset": True}):
            pass
        slow = asyncio.create_task(_push(port, client_ssl_ctx, fresh))

        async def arrived() -> bool:
            async with plain.get(backend[0] + "/_stats") as response:
                return bool((await response.json())["requests"])
        await until(arrived, 10, "the slow push reaching the backend")
        gateway.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(slow, 20) == 200
    assert app is not None
    code = await asyncio.to_thread(gateway.process.wait, 40)
    assert code == 0
    assert gateway.reason("stopped")
