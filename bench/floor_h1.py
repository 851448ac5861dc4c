"""The ``h1-hello`` and ``h1-forward`` floors of ``bench/floor.py``: a prototype listener.

The same two servers as floor.py's ``hello`` and ``forward`` (answer 200 itself; forward
the body to the backend through ``gateway/forward/h1pool.py``), but on one
``asyncio.Protocol`` per connection feeding httptools' ``HttpRequestParser`` (llhttp, no
lenient flags) instead of aiohttp's web server: the request line and headers collected in
the parser's callbacks, one task per request, in-order pipelining, keep-alive as the parser
says, 400 and close on any framing error. No guards, timeouts, access log or metrics: this
measures what replacing aiohttp's server could save at most, not a listener to ship.
``h1-checked`` adds the gateway's own token verification (cached) and ``aam-segments``
validation to ``h1-forward``, as floor.py's ``checked`` adds them to ``forward``: with real
work aiohttp's server is the bottleneck of its core, as the gateway is.

``forward`` minus ``h1-forward`` is the part of the gateway's sample-push cost that belongs
to aiohttp's server (its request object, router, middleware chain and response writer);
the checks above it would cost the same on either listener.
"""

from __future__ import annotations

import asyncio
import collections
import ssl

import httptools
from multidict import CIMultiDict

from gateway.forward.h1pool import H1Pool
from gateway.oauth.tokens import TokenVerifier
from gateway.stages.payload import validate_aam_segments

_OK = b'{"ok":true}'
_HEAD = b"POST /segments/aam HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "raw", "target")

    def __init__(self) -> None:
        self.target = b""
        self.method = b""
        self.raw: list[tuple[bytes, bytes]] = []
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.body: list[bytes] = []
        self.keep_alive = True


def _noop() -> None:
    pass


class _Listener(asyncio.Protocol):
    """One connection: parse, queue, answer in order."""

    def __init__(self, pool: H1Pool | None, verifier: TokenVerifier | None) -> None:
        self._pool = pool
        self._verifier = verifier
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._current = _Request()
        self._queue: collections.deque[_Request] = collections.deque()
        self._busy = False
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's SSL transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(_BAD)
                self._transport.close()

    def on_message_begin(self) -> None:
        self._current = _Request()

    def on_url(self, url: bytes) -> None:
        self._current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.raw.append((name, value))

    def on_headers_complete(self) -> None:
        # What a real listener's request type pays: a case-insensitive header map, and a
        # body timer armed and cancelled per request.
        self._current.headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in self._current.raw)
        self._loop.call_later(30.0, _noop).cancel()
        self._current.method = self._parser.get_method()
        self._current.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._current.body.append(body)

    def on_message_complete(self) -> None:
        self._queue.append(self._current)
        if not self._busy:
            self._busy = True
            self._loop.create_task(self._run())

    async def _run(self) -> None:
        while self._queue and self._transport is not None:
            request = self._queue.popleft()
            body = b"".join(request.body)
            status, answer = 200, _OK
            if self._verifier is not None:
                _check(request, body, self._verifier)
            if self._pool is not None:
                upstream = await self._pool.exchange(
                    _HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body,
                    connect_timeout=2.0, deadline=self._loop.time() + 10.0)
                status, answer = upstream.status, upstream.body
            if self._transport is None:
                break
            self._transport.write(
                b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"%s\r\n%s" % (status, len(answer),
                              b"" if request.keep_alive else b"Connection: close\r\n", answer))
            if not request.keep_alive:
                self._transport.close()
                break
        self._busy = False


def _check(request: _Request, body: bytes, verifier: TokenVerifier) -> None:
    """The ``checked`` modes' work: the bearer token verified (cached), the body validated."""
    verifier.verify(request.headers["Authorization"][7:])
    validate_aam_segments(body)


async def serve_h1(mode: str, port: int, context: ssl.SSLContext, backend_port: int,
                   verifier: TokenVerifier | None) -> None:
    """Listen on ``port`` until killed (``mode``: ``h1-hello``, ``h1-forward`` or
    ``h1-checked``)."""
    pool = None
    if mode != "h1-hello":
        pool = H1Pool("127.0.0.1", backend_port, None, keepalive_timeout=30, max_idle=256)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Listener(pool, verifier), "127.0.0.1", port,
                                      ssl=context, backlog=1024)
    print("floor listening", flush=True)
    async with server:
        await asyncio.Event().wait()
