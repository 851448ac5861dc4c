"""state/redis_connection.py without a server: where a connection points, TLS arguments,
passwords masked in errors, and the breaker that makes request-path calls fail fast."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.config import SentinelSettings, StateSettings
from gateway.state.base import StateError
from gateway.state.redis_connection import RedisConnection, describe, tls_options


def _connection(url: str, password: str | None = None) -> RedisConnection:
    return RedisConnection(StateSettings(backend="redis", url=url, password=password),
                           name="test", error=StateError, decode_responses=True,
                           socket_timeout=0.1, max_connections=2, breaker_seconds=60.0)


def test_where_names_the_host_never_the_url() -> None:
    assert describe("redis://:secret-pw@10.0.0.5:6380/0") == "redis 10.0.0.5:6380"
    assert describe("rediss://cache.internal/1") == "redis cache.internal:6379"


def test_tls_only_for_rediss_and_always_verified() -> None:
    assert tls_options("redis://x:1/0", None) == {}
    options = tls_options("rediss://x:1/0", Path("/etc/ca.pem"))
    assert options["ssl_cert_reqs"] == "required" and options["ssl_check_hostname"] is True
    assert options["ssl_min_version"] == ssl.TLSVersion.TLSv1_2
    assert options["ssl_ca_certs"] == "/etc/ca.pem"


async def test_errors_mask_every_password_and_trip_the_breaker() -> None:
    conn = _connection("redis://:url-pw-1@127.0.0.1:9/0", password="conf-pw-2")

    async def failing() -> None:
        raise RedisConnectionError("auth url-pw-1 and conf-pw-2 refused")

    with pytest.raises(StateError) as caught:
        await conn.call(failing)
    text = str(caught.value)
    assert "url-pw-1" not in text and "conf-pw-2" not in text
    assert text.startswith("redis 127.0.0.1:9: ConnectionError:")
    assert not conn.usable()

    async def fine() -> int:
        return 7

    with pytest.raises(StateError, match="unreachable a moment ago"):
        await conn.call(fine, fail_fast=True)
    assert await conn.call(fine) == 7  # a probe goes through and closes the breaker
    assert conn.usable()
    await conn.close()


async def test_through_sentinel_it_names_the_service_and_masks_both_passwords() -> None:
    sentinel = SentinelSettings(master_name="gw", nodes=(("127.0.0.1", 9),),
                                password="redis-pw-4", sentinel_password="sent-pw-5")
    conn = RedisConnection(StateSettings(backend="redis", sentinel=sentinel), name="test",
                           error=StateError, decode_responses=True, socket_timeout=0.1,
                           max_connections=2)
    assert conn.where == "redis sentinel gw (primary unknown)"
    assert await conn.primary() is None  # no Sentinel answers: unknown, not an exception
    assert conn.mask("redis-pw-4 sent-pw-5") == "*** ***"
    await conn.close()
