"""HTTP abuse over real TLS sockets: smuggling shapes, oversized heads, slowloris, slow bodies,
idle connections and TLS garbage (the connection guards of ``gateway/guards.py``).

Timeouts are shortened through ``guards.DEFAULT_LIMITS`` (read when the gateway starts), so
the waits are a second or two; every wait is a deadline, never a sleep that a result
depends on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.config import Settings
from gateway.serve import guards
from gateway.serve.guards import ConnectionLimits
from gateway.serve.server import RunningGateway

from adv_harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    SEED_PAYLOAD,
    RawAnswer,
    assert_error_body,
    backend_count,
    basic,
    fetch_token,
    raw_exchange,
    read_answer,
)

Start = Callable[[ConnectionLimits], Awaitable[RunningGateway]]


@pytest.fixture
def guarded(backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
            write_config: Callable[[dict[str, Any]], Settings],
            start: Callable[[Settings], Awaitable[RunningGateway]],
            monkeypatch: pytest.MonkeyPatch) -> Start:
    """Start the gateway with the given connection limits."""

    async def _start(limits: ConnectionLimits) -> RunningGateway:
        monkeypatch.setattr(guards, "DEFAULT_LIMITS", limits)
        return await start(write_config(adv_config(backend[0] + "/segments/aam")))

    return _start


async def _open(port: int, context: ssl.SSLContext) -> tuple[asyncio.StreamReader,
                                                              asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                         server_hostname="localhost")


def _push(token: str, *, framing: bytes, body: bytes, target: bytes = b"/segments/aam",
          version: bytes = b"HTTP/1.1") -> bytes:
    return (b"POST " + target + b" " + version + b"\r\nHost: localhost\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\n" + framing + b"\r\n" + body)


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"


# -- request smuggling -------------------------------------------------------------------------

def _shapes(token: str) -> dict[str, bytes]:
    """Each shape hides a complete, valid push (``?smuggled=1``) where a front end and a back
    end might disagree about where the first request ends (RFC 9112 §6.3, §11.2)."""
    smuggled = (_push(token, framing=f"Content-Length: {len(SEED_PAYLOAD)}\r\n".encode(),
                      body=SEED_PAYLOAD, target=b"/segments/aam?smuggled=1"))
    n = len(smuggled)
    cl = f"Content-Length: {n}\r\n".encode()
    return {
        "CL.TE": _push(token, framing=cl + b"Transfer-Encoding: chunked\r\n",
                       body=b"0\r\n\r\n" + smuggled),
        "TE.CL": _push(token, framing=b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                       body=_chunked(smuggled)),
        "CL.CL": _push(token, framing=b"Content-Length: 0\r\n" + cl, body=smuggled),
        "CL.CL-same": _push(token, framing=cl + cl, body=smuggled),
        "CL-list": _push(token, framing=f"Content-Length: 0, {n}\r\n".encode(), body=smuggled),
        "CL-plus": _push(token, framing=f"Content-Length: +{n}\r\n".encode(), body=smuggled),
        "CL-hex": _push(token, framing=f"Content-Length: 0x{n:x}\r\n".encode(), body=smuggled),
        "CL-space-before-colon": _push(token, framing=b"Content-Length : 0\r\n" + cl,
                                       body=smuggled),
        "TE-chunked-identity": _push(token, framing=b"Transfer-Encoding: chunked, identity\r\n"
                                     + cl, body=smuggled),
        "TE-identity-chunked-lines": _push(token, framing=b"Transfer-Encoding: chunked\r\n"
                                           b"Transfer-Encoding: identity\r\n" + cl,
                                           body=smuggled),
        "TE-xchunked": _push(token, framing=b"Transfer-Encoding: xchunked\r\n" + cl,
                             body=smuggled),
        "TE-chunkedx": _push(token, framing=b"Transfer-Encoding: chunked-false\r\n" + cl,
                             body=smuggled),
        "TE-vtab": _push(token, framing=b"Transfer-Encoding: \x0bchunked\r\n" + cl,
                         body=smuggled),
        "TE-space-before-colon": _push(token, framing=b"Transfer-Encoding : chunked\r\n" + cl,
                                       body=b"0\r\n\r\n" + smuggled),
        "TE-obs-fold": _push(token, framing=b"Transfer-Encoding:\r\n chunked\r\n" + cl,
                             body=b"0\r\n\r\n" + smuggled),
        "TE-quoted": _push(token, framing=b'Transfer-Encoding: "chunked"\r\n' + cl,
                           body=smuggled),
        "TE-http10": _push(token, framing=b"Transfer-Encoding: chunked\r\n",
                           body=b"0\r\n\r\n" + smuggled, version=b"HTTP/1.0"),
        "chunk-size-overflow": _push(token, framing=b"Transfer-Encoding: chunked\r\n",
                                     body=b"1" + b"0" * 20 + b"\r\nx\r\n0\r\n\r\n" + smuggled),
        "chunk-bare-lf": _push(token, framing=b"Transfer-Encoding: chunked\r\n",
                               body=b"3\nabc\n0\n\n" + smuggled),
        "chunk-ext-lf": _push(token, framing=b"Transfer-Encoding: chunked\r\n",
                              body=b"3;x\nabc\r\n0\r\n\r\n" + smuggled),
        "chunk-negative": _push(token, framing=b"Transfer-Encoding: chunked\r\n",
                                body=b"-3\r\nabc\r\n0\r\n\r\n" + smuggled),
        "bare-lf-head": _push(token, framing=b"Content-Length: 0\nX: " + cl, body=smuggled),
    }


# Shapes that every reading takes as one request may be answered; none is left: even two
# identical Content-Lengths (RFC 9112 §6.3 allows merging them) are refused.
_UNAMBIGUOUS: set[str] = set()


async def test_smuggling_shapes_are_refused_and_never_reach_the_backend_twice(
        adv_gateway: RunningGateway, token: str, backend: tuple[str, Any],
        client_ssl_ctx: ssl.SSLContext) -> None:
    port = adv_gateway.ports["https"]
    refused: list[str] = []
    for name, raw in _shapes(token).items():
        before = await backend_count(backend[0])
        answers = await raw_exchange(port, client_ssl_ctx, raw, answers=2)
        after = await backend_count(backend[0])
        first = answers[0]
        assert first.status != 0, name
        assert after - before <= 1, name
        async with aiohttp.ClientSession() as client, \
                client.get(backend[0] + "/_stats") as response:
            last = (await response.json())["last"]
        assert last is None or "smuggled" not in (last["query"] or ""), name
        assert not any(a.status == 200 for a in answers[1:]), name
        if first.status == 400 and assert_error_body(first)["error"] == "invalid_request":
            assert after == before, name
            # Closed after the refusal: the hidden request is never read as a second one.
            assert first.headers.get("connection") == "close", name
            assert all(a.status == 0 for a in answers[1:]), (name, answers)
            refused.append(name)
        else:
            assert name in _UNAMBIGUOUS, (name, first)
            assert first.status in (200, 400), (name, first)
    assert set(refused) == set(_shapes(token)) - _UNAMBIGUOUS


# -- oversized heads ---------------------------------------------------------------------------

async def test_oversized_heads_get_json_431_or_414_and_nothing_is_logged(
        adv_gateway: RunningGateway, client_ssl_ctx: ssl.SSLContext, backend: tuple[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    port = adv_gateway.ports["https"]
    marker = "SECRETMARKER"
    head = b"POST /segments/aam HTTP/1.1\r\nHost: localhost\r\n"
    cases = {
        "long header line": (head + b"Authorization: Bearer " + marker.encode() * 2000
                             + b"\r\n\r\n", 431),
        "long header name": (head + b"X-" + b"a" * 20000 + b": 1\r\n\r\n", 431),
        "many headers": (head + b"".join(b"X-H%d: %s\r\n" % (i, marker.encode())
                                         for i in range(200)) + b"\r\n", 431),
        "long request line": (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        "huge head in one go": (head + b"X-A: " + b"b" * 1_000_000 + b"\r\n\r\n", 431),
    }
    before = await backend_count(backend[0])
    with caplog.at_level(logging.DEBUG):
        for name, (raw, status) in cases.items():
            answers = await raw_exchange(port, client_ssl_ctx, raw)
            assert answers[0].status == status, (name, answers)
            assert_error_body(answers[0])
    assert marker not in caplog.text
    assert "Traceback" not in caplog.text
    assert await backend_count(backend[0]) == before


# -- slow clients ------------------------------------------------------------------------------

async def _trickle(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes,
                   every: float) -> RawAnswer:
    """Send ``data`` a byte at a time until the server answers or closes; bounded by the
    length of ``data`` and by the suite's answer deadline."""
    answer: asyncio.Task[RawAnswer] = asyncio.ensure_future(read_answer(reader))
    for byte in data:
        if answer.done():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            break
        await asyncio.wait({answer}, timeout=every)
    return await answer


async def _served_meanwhile(port: int, context: ssl.SSLContext, rounds: int) -> int:
    """Complete token requests and pushes while an attacker holds connections open."""
    served = 0
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as client:
        for _ in range(rounds):
            token = await fetch_token(client, port)
            async with client.post(f"https://localhost:{port}/segments/aam", data=SEED_PAYLOAD,
                                   headers={"Authorization": f"Bearer {token}",
                                            "Content-Type": "application/json"}) as response:
                assert response.status == 200
                served += 1
    return served


async def test_slowloris_head_is_cut_at_the_header_timeout_while_others_are_served(
        guarded: Start, client_ssl_ctx: ssl.SSLContext) -> None:
    running = await guarded(ConnectionLimits(header_seconds=1.0, body_seconds=5.0,
                                             max_connections=64))
    port = running.ports["https"]
    loop = asyncio.get_running_loop()
    attackers = [await _open(port, client_ssl_ctx) for _ in range(5)]
    head = b"POST /segments/aam HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
    began = loop.time()
    async with asyncio.timeout(8):
        results = await asyncio.gather(
            *(_trickle(w, r, head, 0.1) for r, w in attackers),
            _served_meanwhile(port, client_ssl_ctx, 5))
    took = loop.time() - began
    for answer in results[:-1]:
        assert isinstance(answer, RawAnswer)
        # 408 with the JSON body, or (if the close won the race) a bare close.
        assert answer.status in (408, 0), answer
        if answer.status == 408:
            assert assert_error_body(answer)["error"] == "request_timeout"
    assert results[-1] == 5
    # 200 bytes at 0.1 s would take 20 s: the header timeout ended them.
    assert took < 6
    for _, writer in attackers:
        writer.close()


@pytest.mark.parametrize("target, content_type", [
    (b"/segments/aam", b"application/json"),
    (b"/oauth2/token", b"application/x-www-form-urlencoded"),
])
async def test_slow_body_is_cut_at_the_body_timeout(
        guarded: Start, client_ssl_ctx: ssl.SSLContext, backend: tuple[str, Any],
        session: aiohttp.ClientSession, target: bytes, content_type: bytes) -> None:
    running = await guarded(ConnectionLimits(header_seconds=5.0, body_seconds=1.0,
                                             max_connections=64))
    port = running.ports["https"]
    token = await fetch_token(session, port)
    # The credential the endpoint checks before it reads a body: the body is what is slow.
    authorization = (b"Bearer " + token.encode() if target == b"/segments/aam"
                     else basic(CLIENT_ID, CLIENT_SECRET).encode())
    before = await backend_count(backend[0])
    loop = asyncio.get_running_loop()
    reader, writer = await _open(port, client_ssl_ctx)
    writer.write(b"POST " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
                 b"Authorization: " + authorization + b"\r\n"
                 b"Content-Type: " + content_type + b"\r\n"
                 b"Content-Length: " + str(len(SEED_PAYLOAD)).encode() + b"\r\n\r\n")
    began = loop.time()
    async with asyncio.timeout(8):
        answer = await _trickle(writer, reader, SEED_PAYLOAD, 0.1)
    assert loop.time() - began < 5  # the whole body would take a minute
    assert answer.status in (408, 0), answer
    if answer.status == 408:
        assert assert_error_body(answer)["error"] == "request_timeout"
        assert answer.headers.get("connection") == "close"
    # The connection is closed afterwards, and nothing reached the backend.
    async with asyncio.timeout(3):
        assert await reader.read() == b""
    writer.close()
    assert await backend_count(backend[0]) == before
    # A chunked body that trickles is cut the same way.
    reader, writer = await _open(port, client_ssl_ctx)
    writer.write(b"POST " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
                 b"Authorization: " + authorization + b"\r\n"
                 b"Content-Type: " + content_type + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    async with asyncio.timeout(8):
        answer = await _trickle(writer, reader, b"".join(
            b"1\r\n" + bytes([c]) + b"\r\n" for c in SEED_PAYLOAD), 0.05)
    assert answer.status in (408, 0), answer
    writer.close()
    assert await backend_count(backend[0]) == before


# -- many connections --------------------------------------------------------------------------

async def test_idle_connections_are_bounded_and_evicted_for_real_clients(
        guarded: Start, client_ssl_ctx: ssl.SSLContext) -> None:
    cap = 8
    running = await guarded(ConnectionLimits(header_seconds=5.0, body_seconds=5.0,
                                             max_connections=cap))
    port = running.ports["https"]
    idle = [await _open(port, client_ssl_ctx) for _ in range(cap * 2)]
    # Each new idle connection evicted the oldest one: at most ``cap`` remain open.
    async with asyncio.timeout(5):
        assert await _served_meanwhile(port, client_ssl_ctx, 2) == 2
        open_ones = 0
        for reader, _ in idle:
            try:
                data = await asyncio.wait_for(reader.read(1), timeout=0.2)
            except TimeoutError:
                open_ones += 1  # still open: nothing to read, no EOF
            else:
                assert data == b""
    assert open_ones <= cap
    assert open_ones >= 1  # the newest idle connections were not all thrown away
    for _, writer in idle:
        writer.close()


async def _refused_or_status(port: int, context: ssl.SSLContext, request: bytes) -> int:
    """The answer's status; 0 when the connection was closed before its TLS handshake."""
    try:
        return (await raw_exchange(port, context, request))[0].status
    except (ConnectionError, ssl.SSLError):
        return 0


async def test_busy_connections_past_the_cap_are_refused(guarded: Start,
                                                         client_ssl_ctx: ssl.SSLContext
                                                         ) -> None:
    """Past the cap with none idle, a new connection is closed before its handshake (it
    holds no descriptor past ``accept``: serve/acceptor.py); the JSON 503 remains for one
    that got in while a slot was being taken."""
    cap = 4
    running = await guarded(ConnectionLimits(header_seconds=3.0, body_seconds=3.0,
                                             max_connections=cap))
    port = running.ports["https"]
    busy = []
    for _ in range(cap):
        reader, writer = await _open(port, client_ssl_ctx)
        writer.write(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")  # a head in progress
        await writer.drain()
        busy.append((reader, writer))
    async with asyncio.timeout(5):
        for _ in range(100):  # the server sees the partial heads once it has read them
            status = await _refused_or_status(port, client_ssl_ctx, b"GET / HTTP/1.1\r\n\r\n")
            if status in (0, 503):
                break
            await asyncio.sleep(0.01)
    assert status == 0
    for _, writer in busy:
        writer.close()
    # Once they are gone the listener serves again at once.
    async with asyncio.timeout(5):
        while True:
            status = await _refused_or_status(port, client_ssl_ctx,
                                              b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
            if status == 404:
                break
            await asyncio.sleep(0.01)


# -- TLS garbage -------------------------------------------------------------------------------

def _client_hello_prefix() -> bytes:
    """The first bytes of a real ClientHello, cut short."""
    body = b"\x03\x03" + os.urandom(32) + b"\x00\x00\x02\x13\x01\x01\x00"
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    record = b"\x16\x03\x01" + struct.pack("!H", len(handshake) + 500) + handshake
    return record


async def test_tls_garbage_is_dropped_and_the_listener_keeps_serving(
        guarded: Start, client_ssl_ctx: ssl.SSLContext) -> None:
    running = await guarded(ConnectionLimits(handshake_seconds=1.0))
    port = running.ports["https"]
    garbage = [
        os.urandom(4096), b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", b"\x16\x03\x01\x00\x00",
        b"\x16\x03\x01\xff\xff" + os.urandom(100), b"\x80" * 64, _client_hello_prefix() + b"\x00",
        b"\x15\x03\x03\x00\x02\x02\x28",  # a fatal alert before any hello
    ]
    stalled = []
    for _ in range(20):
        # Half a record, then silence: these hold no protocol, request or connection slot,
        # and the handshake timeout closes them.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_client_hello_prefix()[:30])
        stalled.append((reader, writer))
    for blob in garbage:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(blob)
        writer.write_eof()  # then the end: the server must give up on it at once
        async with asyncio.timeout(5):
            try:
                data = await reader.read(65536)
            except ConnectionError:
                data = b""
        # Nothing HTTP comes back: an alert record at most, then the close.
        assert not data.startswith(b"HTTP/"), data[:40]
        writer.close()
    # A reset in the middle of a handshake.
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(_client_hello_prefix())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    async with asyncio.timeout(5):
        assert await _served_meanwhile(port, client_ssl_ctx, 2) == 2
    # The stalled handshakes are closed by the server (1 s here; 10 s by default).
    async with asyncio.timeout(5):
        for reader, writer in stalled:
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""
            writer.close()


async def test_a_chunked_body_in_many_segments_is_accepted(
        adv_gateway: RunningGateway, token: str, backend: tuple[str, Any],
        client_ssl_ctx: ssl.SSLContext) -> None:
    # Found by the slow-body test: a chunked body was read with one read(n), which returns
    # what is buffered, so a body spread over several TCP segments was refused 413.
    before = await backend_count(backend[0])
    reader, writer = await _open(adv_gateway.ports["https"], client_ssl_ctx)
    writer.write(_push(token, framing=b"Transfer-Encoding: chunked\r\n", body=b""))
    for start in range(0, len(SEED_PAYLOAD), 50):
        piece = SEED_PAYLOAD[start:start + 50]
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)  # pacing only: each piece arrives as its own segment
    writer.write(b"0\r\n\r\n")
    async with asyncio.timeout(5):
        answer = await read_answer(reader)
    writer.close()
    assert answer.status == 200, answer
    assert await backend_count(backend[0]) == before + 1
    async with aiohttp.ClientSession() as client, client.get(backend[0] + "/_stats") as r:
        assert (await r.json())["last"]["body_bytes"] == len(SEED_PAYLOAD)
