"""Spool delivery through the real gateway and the real sample backend on loopback ports
(docs/operations.md): the same bytes as a direct forward, a 4xx dead-letters with the backend's
answer, the size bound answers 503 with Retry-After, ``gateway spool list|retry|purge|stats``
on the dead-letter list, and /readyz and /metrics reporting the spool."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.cli import main
from gateway.config import Settings
from gateway.serve.server import RunningGateway
from gateway.spool.sqlite import statements as store
from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import base_config, fetch_token
from polling import until

Start = Callable[[Settings], Awaitable[RunningGateway]]


@pytest.fixture
def spool_config(cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
                 backend: tuple[str, web.Application], tmp_path: Path) -> dict[str, Any]:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    config["routes"].append({**config["routes"][0], "path": "/segments/spooled",
                             "delivery": "spool"})
    config["state"] = {"path": str(tmp_path / "state.db")}
    config["spool"] = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.2}
    return config


async def _push(session: aiohttp.ClientSession, port: int, token: str, path: str,
                request_id: str) -> tuple[int, dict[str, str], bytes]:
    async with session.post(f"https://localhost:{port}{path}?batch=7&x=%20y",
                            data=SEED_PAYLOAD, headers={
                                "Authorization": f"Bearer {token}",
                                "Content-Type": "application/json", "X-Request-Id": request_id,
                                "X-Gateway-Client-Id": "spoofed", "Connection": "keep-alive"},
                            ) as response:
        return response.status, dict(response.headers), await response.read()


async def _control(session: aiohttp.ClientSession, backend: str, **change: Any) -> None:
    async with session.post(backend + "/_control", json=change) as response:
        assert response.status == 200


async def _stats(session: aiohttp.ClientSession, backend: str) -> dict[str, Any]:
    async with session.get(backend + "/_stats") as response:
        return dict(await response.json())


def _cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["spool", *args, "-c", str(config)])
    return code, capsys.readouterr().out


async def test_a_spooled_push_reaches_the_backend_as_a_direct_one_would(
        spool_config: dict[str, Any], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession,
        backend: tuple[str, web.Application]) -> None:
    gateway = await start(write_config(spool_config))
    port = gateway.ports["https"]
    token = await fetch_token(session, port)
    status, _, _ = await _push(session, port, token, "/segments/aam", "direct-1")
    assert status == 200
    direct = (await _stats(session, backend[0]))["last"]
    status, headers, body = await _push(session, port, token, "/segments/spooled", "spool-1")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["spooled"] is True
    spooled = (await until(lambda: _last_if(session, backend[0], "spool-1")))
    for seen in (direct, spooled):  # per request: its id, and its own new trace context
        seen["headers"].pop("X-Request-ID", None)
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", seen["headers"].pop("traceparent"))
    # The spool adds the push's key (a quoted UUID, IETF httpapi draft); a forward does not.
    key = spooled["headers"].pop("Idempotency-Key")
    assert re.fullmatch(r'"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"',
                        key)
    assert "Idempotency-Key" not in direct["headers"]
    # The same method, query, headers (rewritten once, by the same code) and body bytes.
    assert spooled["headers"] == direct["headers"] and spooled["query"] == direct["query"]
    assert spooled["method"] == "POST" and spooled["body_bytes"] == len(SEED_PAYLOAD)
    assert spooled["headers"]["X-Gateway-Client-Id"] == "aam"
    assert "Authorization" not in spooled["headers"]


async def _last_if(session: aiohttp.ClientSession, backend: str,
                   request_id: str) -> dict[str, Any] | None:
    last = (await _stats(session, backend))["last"]
    if last and request_id in last["headers"].values():
        return dict(last)
    return None


async def test_a_4xx_dead_letters_and_the_commands_list_retry_and_purge(
        spool_config: dict[str, Any], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession, backend: tuple[str, web.Application],
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = write_config(spool_config)
    gateway = await start(settings)
    port, admin = gateway.ports["https"], gateway.ports["admin"]
    token = await fetch_token(session, port)
    await _control(session, backend[0], status=422, reset=True)
    for request_id in ("refused-1", "refused-2"):
        status, _, _ = await _push(session, port, token, "/segments/spooled", request_id)
        assert status == 200  # accepted: the backend's refusal comes later

    def dead() -> list[store.Entry]:
        db = store.connect(settings.spool.path)
        try:
            return store.entries(db, dead_only=True, limit=10)
        finally:
            db.close()

    async def both_dead() -> list[store.Entry] | None:
        found = dead()
        return found if len(found) == 2 else None

    first, second = await until(both_dead)
    assert (await _stats(session, backend[0]))["requests"] == 2  # at once, not retried
    assert first.last_status == 422 and '"received": false' in (first.last_error or "")
    async with session.get(f"http://127.0.0.1:{admin}/readyz") as response:
        ready = await response.json()
    assert response.status == 200 and ready["spool"]["dead_letters"] == 2
    async with session.get(f"http://127.0.0.1:{admin}/metrics") as response:
        text = await response.text()
    assert 'gateway_spool_dead_letters_total{route="/segments/spooled"} 2.0' in text
    assert 'gateway_spool_dead_letters{route="/segments/spooled"} 2.0' in text

    code, out = _cli(capsys, settings.source, "list", "--dead")
    assert code == 0 and f"{first.id:>8}  /segments/spooled" in out and "422" in out
    assert "refused-1" not in out and "Bearer" not in out  # never headers or bodies

    await _control(session, backend[0], status=200, reset=True)
    code, out = _cli(capsys, settings.source, "retry", str(first.id))
    assert code == 0 and "1 item(s) requeued" in out
    await until(lambda: _last_if(session, backend[0], "refused-1"))
    assert [e.id for e in dead()] == [second.id]

    code, out = _cli(capsys, settings.source, "purge", "--all-dead")
    assert code == 0 and "1 item(s) purged" in out
    code, out = _cli(capsys, settings.source, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["dead_letters"] == 0 and stats["items"] == 0
    assert (await _stats(session, backend[0]))["requests"] == 1  # the purged one never went
    code, _ = _cli(capsys, settings.source, "retry", "12345")
    assert code == 1  # no such item


async def test_past_the_bound_the_route_answers_503_with_retry_after(
        spool_config: dict[str, Any], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession,
        backend: tuple[str, web.Application]) -> None:
    spool_config["spool"]["max_items"] = 3
    gateway = await start(write_config(spool_config))
    port = gateway.ports["https"]
    token = await fetch_token(session, port)
    await _control(session, backend[0], status=503)  # the backend fails: nothing drains
    for i in range(3):
        status, _, _ = await _push(session, port, token, "/segments/spooled", f"fill-{i}")
        assert status == 200
    status, headers, body = await _push(session, port, token, "/segments/spooled", "over")
    assert status == 503 and int(headers["Retry-After"]) > 0
    assert json.loads(body)["error"] == "service_unavailable"
    status, _, _ = await _push(session, port, token, "/segments/aam", "direct")
    assert status == 503  # the direct route relays the failing backend's own answer
    await _control(session, backend[0], status=200)

    async def room() -> bool:
        status, _, _ = await _push(session, port, token, "/segments/spooled", "later")
        return status == 200

    await until(room)  # once delivered, there is room again


async def test_a_spool_routes_unreachable_backend_keeps_the_gateway_ready(
        spool_config: dict[str, Any], write_config: Callable[[dict[str, Any]], Settings],
        start: Start, session: aiohttp.ClientSession) -> None:
    """A load balancer must keep sending pushes the spool can hold; a direct route's
    unreachable backend still makes the gateway not ready."""
    spool_config["routes"] = [{**spool_config["routes"][1],
                               "upstream": "http://127.0.0.1:9/segments/aam"}]
    gateway = await start(write_config(spool_config))
    async with session.get(f"http://127.0.0.1:{gateway.ports['admin']}/readyz") as response:
        ready = await response.json()
    assert response.status == 200 and ready["status"] == "ready"
    assert ready["spooling"] and "127.0.0.1:9" in ready["spooling"][0]
    spool_config["routes"].append({**spool_config["routes"][0], "path": "/direct",
                                   "delivery": "direct"})
    direct = await start(write_config(spool_config))
    async with session.get(f"http://127.0.0.1:{direct.ports['admin']}/readyz") as response:
        assert response.status == 503
        assert "127.0.0.1:9" in " ".join((await response.json())["reasons"])
