"""A client that pipelines requests and never reads the answers cannot grow the gateway's
memory without bound (docs/security.md, "Limits").

The answers go into the connection's transport; once its write buffer is above the
high-water mark the listener must stop taking requests off that connection (stop
answering, stop reading) until the client reads. The client here shrinks its receive
buffer so the kernel holds little, pipelines 20,000 requests (about 7 MB of answers) and
reads nothing until the gateway has stopped answering; the server side's write buffer is
checked at every poll. Then it reads everything: every request is answered, in order.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from aiohttp import web

from gateway import keys
from gateway.serve.server import RunningGateway

from adv_harness import read_answer

REQUESTS = 20_000
# The TLS transport's high-water mark (uvloop: 512 KiB, what it buffers above the socket)
# with room for the answers in flight when it is crossed; 7 MB were it unbounded.
WRITE_BUFFER_BOUND = 1024 * 1024
STALLED_POLLS = 25  # answered count unchanged for this many polls: the gateway has stopped
POLL_SECONDS = 0.02
MAX_POLLS = 1500  # the bound on the whole wait (30 s), never the assertion


def _answered(gateway: RunningGateway) -> int:
    return sum(gateway.app[keys.METRICS].requests.values())


def _write_buffers(gateway: RunningGateway) -> list[int]:
    sizes = []
    for runner in gateway.runners[:1]:  # the public listener
        server = runner.server
        assert isinstance(server, web.Server)
        for handler in server.connections:
            transport = handler.transport
            if transport is not None and not transport.is_closing():
                sizes.append(transport.get_write_buffer_size())  # type: ignore[attr-defined]
    return sizes


async def test_a_client_that_never_reads_cannot_grow_the_write_buffer(
        adv_gateway: RunningGateway, client_ssl_ctx: ssl.SSLContext) -> None:
    port = adv_gateway.ports["https"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=client_ssl_ctx,
                                                   server_hostname="localhost")
    try:
        before = _answered(adv_gateway)
        request = b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n"
        writer.write(request * REQUESTS)  # buffered on our side; no drain awaited
        last, unchanged, peak = -1, 0, 0
        for _ in range(MAX_POLLS):
            await asyncio.sleep(POLL_SECONDS)
            peak = max([peak, *_write_buffers(adv_gateway)])
            answered = _answered(adv_gateway) - before
            unchanged = unchanged + 1 if answered == last else 0
            last = answered
            if unchanged >= STALLED_POLLS or answered >= REQUESTS:
                break
        assert peak <= WRITE_BUFFER_BOUND, (peak, last)
        # Stopped well short of the end: the answers it holds are bounded, not 7 MB.
        assert 0 < last < REQUESTS, last
        async with asyncio.timeout(60):
            for index in range(REQUESTS):
                answer = await read_answer(reader)
                assert answer.status == 404, (index, answer)
        assert _answered(adv_gateway) - before == REQUESTS
    finally:
        writer.close()
