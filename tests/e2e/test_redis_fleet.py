"""Two gateway instances sharing one real Redis (docs/architecture.md, docs/deploy.md), over real
TLS sockets: a
token revoked through one is refused by the other within a second; failed authentications
from one address add up across instances; Redis killed mid-run leaves pushes answered
``200``, ``/readyz`` degraded (still 200) and known revocations in force, and when Redis
comes back (empty, as after a crash without persistence) everything recovers by itself."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web

from gateway.config import Settings
from gateway.serve.server import RunningGateway
from gateway.tools.seed import SEED_PAYLOAD

from e2e_harness import CLIENT_ID, CLIENT_SECRET, base_config, basic, fetch_token
from polling import until
from redis_harness import RedisServer, needs_redis

pytestmark = [needs_redis, pytest.mark.slow]

Fleet = tuple[RunningGateway, RunningGateway]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    started = RedisServer(tmp_path / "redis")
    yield started
    started.stop()


@pytest.fixture
async def fleet(server: RedisServer, cert_dir: Path, signing_keys: dict[str, Path],
                secret_hash: str, backend: tuple[str, web.Application],
                write_config: Callable[[dict[str, Any]], Settings],
                start: Callable[[Settings], Awaitable[RunningGateway]]) -> Fleet:
    config = base_config(cert_dir, signing_keys, secret_hash, backend[0] + "/segments/aam")
    config["tokens"]["failed_auth_per_minute"] = 4
    config["state"] = {"backend": "redis", "url": server.url}
    settings = write_config(config)
    return await start(settings), await start(settings)


async def _push(session: aiohttp.ClientSession, port: int, token: str) -> int:
    async with session.post(f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/json"}) as response:
        await response.read()
        return response.status


async def _revoke(session: aiohttp.ClientSession, port: int, token: str) -> int:
    async with session.post(f"https://localhost:{port}/oauth2/revoke", data={"token": token},
                            headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}) as r:
        await r.read()
        return r.status


async def _wrong_secret(session: aiohttp.ClientSession, port: int) -> int:
    async with session.post(f"https://localhost:{port}/oauth2/token",
                            data={"grant_type": "client_credentials"},
                            headers={"Authorization": basic(CLIENT_ID, "wrong")}) as r:
        await r.read()
        return r.status


async def _readyz(port: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{port}/readyz") as response:
        body: dict[str, Any] = await response.json()
        body["http_status"] = response.status
        return body


def _jti(token: str) -> str:
    claims = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["jti"])


async def _ready(port: int) -> dict[str, Any]:
    """/readyz once the instance is subscribed to Redis's events (a moment after start)."""
    async def check() -> dict[str, Any] | None:
        body = await _readyz(port)
        return body if body["status"] == "ready" else None
    result: dict[str, Any] = await until(check, 5.0, "ready")
    return result


async def test_a_revocation_through_one_is_refused_by_the_other_within_a_second(
        fleet: Fleet, session: aiohttp.ClientSession) -> None:
    a, b = (g.ports["https"] for g in fleet)
    await _ready(fleet[1].ports["admin"])
    token = await fetch_token(session, a)
    assert await _push(session, a, token) == 200
    assert await _push(session, b, token) == 200  # now in B's verified-token cache
    assert await _revoke(session, a, token) == 200
    revoked_at = time.monotonic()

    async def refused() -> bool:
        return await _push(session, b, token) == 401
    await until(refused, 1.0, "B refusing a token revoked through A")
    assert time.monotonic() - revoked_at < 1.0
    assert await _push(session, a, await fetch_token(session, b)) == 200  # others still work


async def test_failed_authentications_from_one_address_add_up_across_instances(
        fleet: Fleet, session: aiohttp.ClientSession) -> None:
    a, b = (g.ports["https"] for g in fleet)
    await _ready(fleet[0].ports["admin"])
    # The limit is 4 per minute; each instance alone has seen only 2.
    assert [await _wrong_secret(session, port) for port in (a, b, a, b)] == [401] * 4

    async def blocked(port: int) -> bool:
        return await _wrong_secret(session, port) == 429
    assert await blocked(b)
    await until(lambda: blocked(a), 1.0, "A refusing the address B blocked")
    async with session.post(f"https://localhost:{a}/oauth2/token",
                            data={"grant_type": "client_credentials"},
                            headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}) as r:
        assert r.status == 429, "a blocked address is refused before its credentials"
        assert 1 <= int(r.headers["Retry-After"]) <= 60


async def test_redis_outage_degrades_and_recovers_by_itself(
        fleet: Fleet, server: RedisServer, session: aiohttp.ClientSession) -> None:
    (a, b), admin = ((g.ports["https"] for g in fleet), fleet[0].ports["admin"])
    await _ready(admin)
    await _ready(fleet[1].ports["admin"])
    token, before, during = [await fetch_token(session, a) for _ in range(3)]
    assert await _revoke(session, a, before) == 200
    await until(lambda: _is(_push(session, b, before), 401), 1.0, "revoked before")

    server.stop()

    async def degraded() -> dict[str, Any] | None:
        body = await _readyz(admin)
        return body if body["status"] == "degraded" else None
    body = await until(degraded, 5.0, "/readyz reporting degraded")
    assert body["http_status"] == 200, "a Redis outage must not pull the instance out"
    assert "redis" in body["degraded"][0]
    async with aiohttp.ClientSession() as plain, \
            plain.get(f"http://127.0.0.1:{admin}/metrics") as response:
        assert "gateway_state_degraded 1.0" in await response.text()
    # Valid pushes flow on both; the revocation known before the outage still applies.
    assert [await _push(session, port, token) for port in (a, b, a, b)] == [200] * 4
    assert await _push(session, b, before) == 401
    # Failed authentications fail open to the local count (401, not an error), and a new
    # revocation applies here at once while its caller is told to retry (RFC 7009 §2.2.1).
    assert await _wrong_secret(session, a) == 401
    assert await _revoke(session, a, during) == 503
    assert await _push(session, a, during) == 401

    server.restart()  # empty: no persistence
    await _ready(admin)
    await _ready(fleet[1].ports["admin"])
    # What Redis lost comes back from the instances: B learns of the revocation A could
    # only keep locally, and both revocations are in Redis again.
    await until(lambda: _is(_push(session, b, during), 401), 5.0,
                     "B refusing the token revoked during the outage")
    raw = redis.Redis(port=server.port, decode_responses=True)
    try:
        assert set(await raw.zrange("gateway:revoked", 0, -1)) == {_jti(before), _jti(during)}
    finally:
        await raw.aclose()
    assert await _push(session, b, token) == 200


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected
