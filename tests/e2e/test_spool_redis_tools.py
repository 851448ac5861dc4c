"""The operator's tools against the Redis spool (docs/operations.md), through the real
gateway, a real ``redis-server`` and the sample backend on loopback ports: a 4xx
dead-letters into the dead-letter stream with the backend's answer; ``gateway spool
list|retry|purge|stats``, ``/readyz`` and ``/metrics`` show and change it as they do the
SQLite file's; a push the instance can store nowhere (Redis down, the local file
unwritable) is answered 503 and ``/readyz`` says not ready."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.cli import main
from gateway.config import Settings
from gateway.serve.server import RunningGateway
from gateway.serve.status_spool import change, dead_letters
from gateway.spool.base import Entry
from gateway.spool.commands import spool_entries
from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import base_config, fetch_token
from polling import until
from redis_harness import RedisServer, needs_redis

pytestmark = needs_redis

Start = Callable[[Settings], Awaitable[RunningGateway]]
ROUTE = "/segments/spooled"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    started = RedisServer(tmp_path / "redis")
    yield started
    started.stop()


@pytest.fixture
def redis_config(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                 backend: tuple[str, web.Application], tmp_path: Path,
                 server: RedisServer) -> dict[str, Any]:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    config["routes"] = [{**config["routes"][0], "path": ROUTE, "delivery": "spool"}]
    config["state"] = {"path": str(tmp_path / "state.db")}
    config["spool"] = {"backend": "redis", "url": server.url, "retry_initial_seconds": 0.05,
                       "retry_max_seconds": 0.2}
    return config


async def _push(session: aiohttp.ClientSession, port: int, token: str,
                request_id: str) -> tuple[int, bytes]:
    async with session.post(f"https://localhost:{port}{ROUTE}", data=SEED_PAYLOAD, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "X-Request-Id": request_id}) as response:
        return response.status, await response.read()


async def _backend(session: aiohttp.ClientSession, url: str, path: str,
                   **change: Any) -> dict[str, Any]:
    method = session.post if change else session.get
    async with method(url + path, **({"json": change} if change else {})) as response:
        assert response.status == 200
        return dict(await response.json())


def _cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["spool", *args, "-c", str(config)])
    return code, capsys.readouterr().out


async def test_dead_letters_and_the_commands_on_the_redis_spool(
        redis_config: dict[str, Any], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession, backend: tuple[str, web.Application],
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = write_config(redis_config)
    gateway = await start(settings)
    port, admin = gateway.ports["https"], gateway.ports["admin"]
    token = await fetch_token(session, port)
    await _backend(session, backend[0], "/_control", status=422, reset=True)
    for request_id in ("refused-1", "refused-2"):
        status, body = await _push(session, port, token, request_id)
        assert status == 200 and json.loads(body)["spooled"] is True

    async def both_dead() -> list[Entry] | None:
        found = await spool_entries(settings, dead_only=True, limit=10)
        return found if len(found) == 2 else None

    first, second = await until(both_dead, 10.0, "two dead letters")
    assert (await _backend(session, backend[0], "/_stats"))["requests"] == 2  # not retried
    assert first.last_status == 422 and '"received": false' in (first.last_error or "")

    async def counted() -> dict[str, Any] | None:  # read by the background round (1 s)
        async with session.get(f"http://127.0.0.1:{admin}/readyz") as response:
            found: dict[str, Any] = await response.json()
        assert response.status == 200 and found["status"] == "ready"
        return found if found["spool"]["dead_letters"] == 2 else None
    ready = await until(counted, 5.0, "/readyz counting the two dead letters")
    assert ready["spool"]["backend"] == "redis"
    assert "127.0.0.1" in ready["spool"]["where"] and "redis://" not in ready["spool"]["where"]
    async with session.get(f"http://127.0.0.1:{admin}/metrics") as response:
        text = await response.text()
    assert f'gateway_spool_dead_letters_total{{route="{ROUTE}"}} 2.0' in text
    assert f'gateway_spool_dead_letters{{route="{ROUTE}"}} 2.0' in text
    assert f'gateway_spool_depth{{route="{ROUTE}"}} 0.0' in text

    code, out = _cli(capsys, settings.source, "list", "--dead")
    assert code == 0 and f"{first.id:>8}  {ROUTE}" in out and "422" in out
    assert "refused-1" not in out and "Bearer" not in out  # never headers or bodies

    await _backend(session, backend[0], "/_control", status=200, reset=True)
    code, out = _cli(capsys, settings.source, "retry", str(first.id))
    assert code == 0 and "1 item(s) requeued" in out

    async def redelivered() -> bool:
        last = (await _backend(session, backend[0], "/_stats"))["last"]
        return bool(last) and "refused-1" in last["headers"].values()
    await until(redelivered, 10.0, "the requeued dead letter delivered")
    assert [e.id for e in await spool_entries(settings, dead_only=True, limit=10)] == [
        second.id]

    code, out = _cli(capsys, settings.source, "purge", "--all-dead")
    assert code == 0 and "1 item(s) purged" in out
    code, out = _cli(capsys, settings.source, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["backend"] == "redis"
    assert (stats["dead_letters"], stats["items"], stats["bytes"]) == (0, 0, 0)
    assert (await _backend(session, backend[0], "/_stats"))["requests"] == 1
    code, out = _cli(capsys, settings.source, "stats")
    assert code == 0 and "0 waiting, 0 dead letter(s)" in out
    code, _ = _cli(capsys, settings.source, "retry", "12345")
    assert code == 1  # no such item



async def test_the_status_page_lists_and_retries_the_streams_dead_letters(
        redis_config: dict[str, Any], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession, backend: tuple[str, web.Application]
        ) -> None:
    """The status page's dead letters come from the dead-letter stream, not from the local
    fallback file, and its retry requeues them there."""
    settings = write_config(redis_config)
    gateway = await start(settings)
    port, admin = gateway.ports["https"], gateway.ports["admin"]
    token = await fetch_token(session, port)
    await _backend(session, backend[0], "/_control", status=422, reset=True)
    status, _ = await _push(session, port, token, "refused-page")
    assert status == 200

    await until(lambda: spool_entries(settings, dead_only=True, limit=10), 10.0,
                     "a dead letter")
    dead = await dead_letters(settings, 10)
    assert [e.last_status for e in dead] == [422]
    await _backend(session, backend[0], "/_control", status=200, reset=True)
    assert await change(settings, "retry", [dead[0].id]) == 1
    assert await change(settings, "purge", [dead[0].id + 999]) == 0  # no such dead letter

    async def redelivered() -> bool:
        last = (await _backend(session, backend[0], "/_stats"))["last"]
        return bool(last) and "refused-page" in last["headers"].values()
    await until(redelivered, 10.0, "the dead letter requeued from the status page")
    assert await dead_letters(settings, 10) == []
    async with session.get(f"http://127.0.0.1:{admin}/status.json") as response:
        assert response.status == 200  # the page's document, with the streams chosen

async def test_a_push_that_can_be_stored_nowhere_is_answered_503(
        redis_config: dict[str, Any], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession, server: RedisServer,
        tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    redis_config["spool"]["path"] = str(blocker / "spool.db")  # the local file cannot exist
    gateway = await start(write_config(redis_config))
    port, admin = gateway.ports["https"], gateway.ports["admin"]
    token = await fetch_token(session, port)
    assert (await _push(session, port, token, "stored"))[0] == 200  # Redis takes it
    server.stop()
    started = time.monotonic()
    status, body = await _push(session, port, token, "nowhere")
    assert status == 503 and json.loads(body)["error"] == "service_unavailable"
    assert time.monotonic() - started < 3.0  # inside IRIS's limit, so its retry counts
    async with session.get(f"http://127.0.0.1:{admin}/readyz") as response:
        ready = await response.json()
    assert response.status == 503 and ready["status"] == "not_ready"
    assert any("local" in reason for reason in ready["reasons"])
    server.start()

    async def stored_again() -> bool:
        return (await _push(session, port, token, "later"))[0] == 200
    await until(stored_again, 10.0, "Redis taking pushes again")
