"""Reads of the public listener into one buffer per process, not a fresh one per read.

uvloop gives a TLS connection's plaintext to an ``asyncio.Protocol`` (aiohttp's request
handler is one) by reading each time into a new 256 KiB ``bytes`` (``SSL_READ_MAX_SIZE``)
and shrinking it to what arrived: a quarter-megabyte allocation per request, either a
system call triple (``mmap``, ``mremap``, ``munmap``) or a fragmented heap, depending on
glibc's mmap threshold (``malloc.py``; the measurements are in docs/performance.md). A
``BufferedProtocol`` is handed a buffer of its own instead: ``BufferedReads`` wraps the
handler, lends every connection the same buffer, and passes the handler a ``bytes`` of
exactly what was read.

One buffer serves every connection because the loop fills it and calls ``buffer_updated``
in one step, with no other callback in between (uvloop's and asyncio's TLS and socket
reads alike); the handler gets a copy, never a view of it.
"""

from __future__ import annotations

import asyncio

from aiohttp.web_protocol import RequestHandler

__all__ = ["READ_BUFFER_BYTES", "BufferedReads"]

READ_BUFFER_BYTES = 256 * 1024  # what uvloop reads at most at once; a larger read loops
_buffer = memoryview(bytearray(READ_BUFFER_BYTES))


class BufferedReads(asyncio.BufferedProtocol):
    """The transport's protocol for one connection; everything but the reads goes to
    ``handler`` unchanged."""

    __slots__ = ("handler",)

    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler

    def get_buffer(self, sizehint: int) -> memoryview:
        return _buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.handler.data_received(_buffer[:nbytes].tobytes())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.handler.connection_lost(exc)

    def eof_received(self) -> None:
        # aiohttp's handler returns None: the transport closes itself after a half-close.
        self.handler.eof_received()

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()
