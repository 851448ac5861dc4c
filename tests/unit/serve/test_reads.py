"""serve/reads.py: the public listener reads into one buffer per process. Without it, every
TLS read allocated a fresh 256 KiB ``bytes`` (the loop's maximum read), so a request's
peak allocation was at least that."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import tracemalloc
from pathlib import Path

from aiohttp import web

from gateway.serve.guards import GuardedAppRunner, GuardedTCPSite
from gateway.serve.reads import READ_BUFFER_BYTES

_REQUEST = (b"POST /push HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 15\r\n\r\n{\"segments\":[]}")


def _exchange(port: int, context: ssl.SSLContext, count: int, ready: threading.Event,
              go: threading.Event) -> list[bytes]:
    """A handshake and one request, then (once ``go`` is set) ``count`` more on the same
    keep-alive connection, read into a small buffer: a blocking client on a thread, whose
    own reads allocate nothing large, and whose connection's buffers exist before ``go``."""
    answers = []
    buffer = bytearray(4096)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        for index in range(count + 1):
            if index == 1:
                ready.set()
                go.wait(10)
            tls.sendall(_REQUEST)
            size = tls.recv_into(buffer)
            answers.append(bytes(buffer[:size]))
    return answers


async def test_a_tls_request_allocates_no_read_sized_buffer(
        cert_dir: Path, client_ssl_ctx: ssl.SSLContext) -> None:
    async def push(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/push", push)
    runner = GuardedAppRunner(app, access_log=None)
    await runner.setup()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_dir / "server.crt", cert_dir / "server.key")
    site = GuardedTCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = site._bound_port
    try:
        ready, go = threading.Event(), threading.Event()
        client = asyncio.ensure_future(
            asyncio.to_thread(_exchange, port, client_ssl_ctx, 20, ready, go))
        assert await asyncio.to_thread(ready.wait, 10)
        tracemalloc.start()
        try:
            go.set()
            answers = await client
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        await runner.cleanup()
    assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b'{"segments":[]}')
               for a in answers)
    # 20 requests on an open connection: well under one read-sized buffer.
    assert peak < READ_BUFFER_BYTES, f"peak {peak} bytes: a read allocated its own buffer"
