"""Backend faults (docs/architecture.md): a raw asyncio server on loopback plays a broken legacy
API.

For each fault the gateway answers 502 or 504 with the JSON body of docs/architecture.md, never a
2xx,
and within the route's timeout (never a hung client); the next request after the backend
recovers is served at once, on the first try.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.config import Settings
from gateway.forward import h1pool
from gateway.serve.server import RunningGateway

from adv_harness import SEED_PAYLOAD, assert_error_body, fetch_token

TIMEOUT = 1.0  # the route's timeout_seconds in these tests
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


class FaultyBackend:
    """An HTTP/1.1 server whose behaviour is ``mode``; counts the requests it read."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            await self.server.wait_closed()
            self.server = None

    async def _read_request(self, reader: asyncio.StreamReader) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        self.requests += 1
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        poisoned = False
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            for _ in range(1000):  # keep-alive, bounded
                if not await self._read_request(reader):
                    break
                if poisoned:
                    # The rest of the unsolicited answer, then the real one, on the same
                    # connection: a client that kept it reads "poisoned" as its answer.
                    writer.write(b"Content-Length: 8\r\n\r\npoisoned" + OK)
                    await writer.drain()
                    poisoned = False
                    continue
                if self.mode == "poison":
                    # One answer plus the start of an unsolicited second one, in one write.
                    writer.write(OK + b"HTTP/1.1 200 OK\r\nX-Poison: 1\r\n")
                    await writer.drain()
                    self.mode, poisoned = "ok", True
                    continue
                if not await self._answer(writer):
                    break
        self.writers.discard(writer)
        writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> bool:
        """Act out ``mode``; False when the connection is done."""
        mode = self.mode
        if mode == "ok":
            writer.write(OK)
            await writer.drain()
            return True
        if mode == "reset":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if mode in ("garbage", "bad-length", "close-after-headers", "chunked-cut", "no-status"):
            writer.write({
                "garbage": b"\x00\xff\xfeNOT HTTP AT ALL\r\n\r\n",
                "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
                "close-after-headers": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
                "chunked-cut": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"5\r\nhello\r\n",
                "no-status": b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n",
            }[mode])
            await writer.drain()
            return False
        if mode == "slow-body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(100):
                writer.write(b"x" * 10)
                await writer.drain()
                await asyncio.sleep(0.1)
            return False
        if mode == "late":
            await asyncio.sleep(TIMEOUT * 2)
            writer.write(OK)
            await writer.drain()
            return True
        if mode == "interim-forever":
            for _ in range(100):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
            return False
        if mode == "huge":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
            chunk = b"x" * 65536
            for _ in range(20000):  # bounded; the gateway closes long before
                writer.write(chunk)
                await writer.drain()
            return False
        if mode == "huge-headers":
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for i in range(20000):
                writer.write(b"X-Junk-%d: %s\r\n" % (i, b"y" * 1000))
                await writer.drain()
            return False
        raise AssertionError(f"unknown mode {mode}")


@pytest.fixture
async def faulty() -> Any:
    backend = FaultyBackend()
    await backend.start()
    yield backend
    await backend.stop()


GatewayFor = Callable[[int], Awaitable[RunningGateway]]


@pytest.fixture
def gateway_for(adv_config: Callable[..., dict[str, Any]],
                write_config: Callable[[dict[str, Any]], Settings],
                start: Callable[[Settings], Awaitable[RunningGateway]]) -> GatewayFor:
    async def _start(port: int) -> RunningGateway:
        config = adv_config(f"http://127.0.0.1:{port}/segments/aam", timeout_seconds=TIMEOUT)
        return await start(write_config(config))
    return _start


async def _push(session: aiohttp.ClientSession, port: int, token: str,
                ) -> tuple[int, bytes, dict[str, str]]:
    # Never a hung client: the answer comes within the route's timeout plus a margin.
    async with asyncio.timeout(TIMEOUT + 3), session.post(
            f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "application/json"}) as response:
        return response.status, await response.read(), dict(response.headers)


@pytest.mark.parametrize("mode, status", [
    ("reset", 502), ("garbage", 502), ("bad-length", 502), ("close-after-headers", 502),
    ("chunked-cut", 502), ("no-status", 502), ("slow-body", 504), ("late", 504),
    ("interim-forever", 504), ("huge", 502), ("huge-headers", 502),
])
async def test_each_fault_is_502_or_504_and_the_gateway_recovers_at_once(
        faulty: FaultyBackend, gateway_for: GatewayFor, session: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch, mode: str, status: int) -> None:
    # A 1 MiB bound on a backend's answer instead of the default, so "huge" trips it fast.
    monkeypatch.setattr(h1pool, "MAX_ANSWER_BYTES", 1 << 20)
    running = await gateway_for(faulty.port)
    port = running.ports["https"]
    token = await fetch_token(session, port)
    assert (await _push(session, port, token))[0] == 200  # a pooled connection exists now
    faulty.mode = mode
    got, body, _ = await _push(session, port, token)
    assert got == status, (mode, body)
    error = assert_error_body((got, body))["error"]
    assert error == ("bad_gateway" if status == 502 else "gateway_timeout")
    faulty.mode = "ok"
    requests = faulty.requests
    got, body, _ = await _push(session, port, token)
    assert got == 200, (mode, body)
    assert faulty.requests == requests + 1  # served on the first try, not after a retry


async def test_a_refusing_backend_is_502_and_served_as_soon_as_it_listens(
        gateway_for: GatewayFor, session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    running = await gateway_for(free)
    port = running.ports["https"]
    token = await fetch_token(session, port)
    for _ in range(3):
        got, body, _ = await _push(session, port, token)
        assert got == 502 and assert_error_body((got, body))["error"] == "bad_gateway"
    backend = FaultyBackend()
    await backend.start(free)
    try:
        assert (await _push(session, port, token))[0] == 200
        assert backend.requests == 1
    finally:
        await backend.stop()
    # And down again: 502 at once, not a hang on a dead pooled connection.
    assert (await _push(session, port, token))[0] == 502


async def test_a_backend_restart_does_not_fail_the_next_push(
        faulty: FaultyBackend, gateway_for: GatewayFor, session: aiohttp.ClientSession) -> None:
    running = await gateway_for(faulty.port)
    port = running.ports["https"]
    token = await fetch_token(session, port)
    assert (await _push(session, port, token))[0] == 200
    # The backend restarts: the pooled connection is closed under the gateway's feet.
    backend_port = faulty.port
    await faulty.stop()
    await faulty.start(backend_port)
    await asyncio.sleep(0.05)  # pacing only: let the FIN reach the pool's connection
    assert (await _push(session, port, token))[0] == 200


async def test_an_unsolicited_second_answer_never_reaches_the_next_client(
        faulty: FaultyBackend, gateway_for: GatewayFor, session: aiohttp.ClientSession,
        client_ssl_ctx: ssl.SSLContext) -> None:
    running = await gateway_for(faulty.port)
    port = running.ports["https"]
    token = await fetch_token(session, port)
    faulty.mode = "poison"
    status, body, _ = await _push(session, port, token)
    assert status == 200 and body == b'{"ok":true}'
    # The next push must get the backend's answer to it, not the rest of the poison.
    status, body, headers = await _push(session, port, token)
    assert "X-Poison" not in headers and body != b"poisoned", (status, headers, body)
    assert status == 200, body
