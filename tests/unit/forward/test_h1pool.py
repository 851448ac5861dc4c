"""The backend HTTP/1.1 client: framing (RFC 9112 §6), keep-alive reuse, and failures that
must never turn into a second send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.forward.h1pool import ConnectFailed, H1Pool, UpstreamBroken

REQUEST = b"POST /x HTTP/1.1\r\nHost: backend\r\nContent-Length: 2\r\n\r\n{}"
Answer = Callable[[bytes], bytes | None]


@pytest.fixture
async def raw_backend() -> AsyncIterator[Callable[[Answer], asyncio.Future[tuple[int, list[int]]]]]:
    """A backend that answers each request with ``answer(request)`` (None: close silently);
    yields (port, connection ids seen per request)."""
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> tuple[int, list[int]]:
        seen: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                body = await reader.readexactly(length)
                seen.append(id(writer))
                reply = answer(head + body)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply or (b"Content-Length" not in reply \
                        and b"chunked" not in reply):
                    break
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1], seen

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


async def _exchange(pool: H1Pool) -> tuple[int, bytes, dict[str, str]]:
    deadline = asyncio.get_running_loop().time() + 5
    answer = await pool.exchange(REQUEST, connect_timeout=5, deadline=deadline)
    return answer.status, answer.body, dict(answer.headers)


async def test_keep_alive_connection_is_reused(raw_backend) -> None:  # type: ignore[no-untyped-def]
    port, seen = await raw_backend(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    pool = H1Pool("127.0.0.1", port, None, keepalive_timeout=5, max_idle=4)
    assert await _exchange(pool) == (200, b"ok", {"Content-Length": "2"})
    assert (await _exchange(pool))[:2] == (200, b"ok")
    assert len(seen) == 2 and seen[0] == seen[1]
    pool.close()


async def test_chunked_interim_and_close_delimited_answers(raw_backend) -> None:  # type: ignore[no-untyped-def]
    answers = iter([
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close",
    ])
    port, seen = await raw_backend(lambda _: next(answers))
    pool = H1Pool("127.0.0.1", port, None, keepalive_timeout=5, max_idle=4)
    status, body, _ = await _exchange(pool)
    assert (status, body) == (201, b"abcde")
    status, body, _ = await _exchange(pool)
    assert (status, body) == (200, b"until-close")
    assert seen[0] == seen[1]
    pool.close()


async def test_connection_close_is_not_reused(raw_backend) -> None:  # type: ignore[no-untyped-def]
    port, seen = await raw_backend(
        lambda _: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    pool = H1Pool("127.0.0.1", port, None, keepalive_timeout=5, max_idle=4)
    await _exchange(pool)
    await _exchange(pool)
    assert len(seen) == 2 and seen[0] != seen[1]
    pool.close()


async def test_garbage_and_silent_close_are_broken_and_sent_once(raw_backend) -> None:  # type: ignore[no-untyped-def]
    for reply in (b"NOT HTTP AT ALL\r\n\r\n", None,
                  b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\nshort"):
        port, seen = await raw_backend(lambda _, r=reply: r)
        pool = H1Pool("127.0.0.1", port, None, keepalive_timeout=5, max_idle=4)
        with pytest.raises(UpstreamBroken):
            await _exchange(pool)
        assert len(seen) == 1
        pool.close()


async def test_refused_connection_is_connect_failed() -> None:
    pool = H1Pool("127.0.0.1", 9, None, keepalive_timeout=5, max_idle=4)
    with pytest.raises(ConnectFailed):
        await _exchange(pool)
