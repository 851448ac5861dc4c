"""The admin listener under attack (docs/security.md, "The admin listener"): it names no
version in ``Server``, answers only a ``Host`` that names it (its own address, ``localhost``,
``server.admin.host`` or a name of ``server.admin.hosts``) so that a DNS-rebinding page
cannot read ``/status.json`` or ``/metrics``, and caps its connections.

The outside attack run read ``Server: Python/3.11 aiohttp/3.14.5`` there, and the whole
status document and every metric under ``Host: evil.example``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.config import Settings
from gateway.serve.admin import ADMIN_LIMITS
from gateway.serve.server import RunningGateway

from adv_harness import RawAnswer, read_answer

ANSWER_SECONDS = 10.0
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def admin_port(backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
                     write_config: Callable[[dict[str, Any]], Settings],
                     start: Callable[[Settings], Awaitable[RunningGateway]]) -> int:
    config = adv_config(backend[0] + "/segments/aam")
    config["server"]["admin"]["hosts"] = ["gw1.internal", "Metrics.Example"]
    return (await start(write_config(config))).ports["admin"]


async def _get(port: int, path: str, host: str | None) -> RawAnswer:
    """One GET; ``host`` None sends HTTP/1.0 without ``Host``, as HAProxy's check does."""
    head = (f"GET {path} HTTP/1.0\r\n\r\n" if host is None else
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(ANSWER_SECONDS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head.encode())
            await writer.drain()
            return await read_answer(reader)
        finally:
            writer.close()


async def test_no_admin_answer_names_a_version(admin_port: int) -> None:
    for path in ("/healthz", "/metrics", "/status.json", "/no-such-page"):
        answer = await _get(admin_port, path, f"127.0.0.1:{admin_port}")
        assert answer.headers.get("server") == "gateway", (path, answer.headers)


@pytest.mark.parametrize("path", ["/status.json", "/metrics", "/", "/healthz"])
async def test_a_foreign_host_reads_nothing_from_the_admin_listener(
        admin_port: int, path: str) -> None:
    for foreign in ("evil.example", f"evil.example:{admin_port}", "gw1.internal.evil.example",
                    "192.0.2.7", f"[::1]:{admin_port}", ""):
        answer = await _get(admin_port, path, foreign)
        assert answer.status == 421, (foreign, answer.status)
        assert b"gateway_" not in answer.body and b"routes" not in answer.body
        assert answer.json()["error"] == "misdirected_request"
    for own in (f"127.0.0.1:{admin_port}", "127.0.0.1", f"localhost:{admin_port}",
                "LOCALHOST", f"gw1.internal:{admin_port}", "metrics.example", None):
        answer = await _get(admin_port, path, own)
        assert answer.status == 200, (own, answer.status)


async def _hold(port: int) -> Streams:
    """A connection in the middle of a request head: busy, so never evicted."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    await writer.drain()
    return reader, writer


@pytest.fixture
async def held() -> AsyncIterator[list[Streams]]:
    streams: list[Streams] = []
    yield streams
    for _, writer in streams:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_the_admin_listener_caps_its_connections(admin_port: int,
                                                       held: list[Streams]) -> None:
    cap = ADMIN_LIMITS.max_connections
    assert 8 <= cap <= 256
    async with asyncio.timeout(ANSWER_SECONDS * 3):
        for _ in range(cap):
            held.append(await _hold(admin_port))
        # One past the cap, with none idle to evict: 503 and closed, not served.
        answer = await _get(admin_port, "/healthz", "localhost")
        assert answer.status == 503, answer
        # Once one lets go, the listener serves again.
        _, writer = held.pop()
        writer.close()
        await writer.wait_closed()
        for _ in range(100):
            answer = await _get(admin_port, "/healthz", "localhost")
            if answer.status == 200:
                break
            await asyncio.sleep(0.02)
        assert answer.status == 200


@pytest.mark.parametrize("name", ["gw1.internal:9090", "http://gw1.internal", "bad name", ""])
def test_admin_hosts_are_host_names_without_a_port(
        adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings], name: str) -> None:
    from gateway.config import ConfigError

    config = adv_config("http://127.0.0.1:9/segments/aam")
    config["server"]["admin"]["hosts"] = ["gw1.internal", name]
    with pytest.raises(ConfigError) as caught:
        write_config(config)
    assert "server.admin.hosts[1]: must be a host name or an IP address, without a port" in str(
        caught.value)
