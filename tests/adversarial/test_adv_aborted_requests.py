"""A request whose body never arrives in full because the caller went away (FIN or RST after
a head with ``Content-Length``) is not the gateway's failure: it is counted as ``499``
("client closed request", as nginx logs it), logged once at info with ``reason_id:
client_closed_request``, and kept out of the 5xx ratio that pages someone
(``GatewayHigh5xxRatio``, deploy/prometheus/alerts.yml; its promtool tests hold a case of
aborted requests). The outside attack run turned each into a ``500`` with an error log of
``unhandled_exception ConnectionResetError``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time

import pytest

from gateway import keys
from gateway.serve.server import RunningGateway

from adv_harness import CLIENT_ID, CLIENT_SECRET, SEED_PAYLOAD, basic

WAIT_SECONDS = 10.0


def _head(target: str, authorization: str, length: int) -> bytes:
    content_type = ("application/x-www-form-urlencoded" if target == "/oauth2/token"
                    else "application/json")
    return (f"POST {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {authorization}"
            f"\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n").encode()


async def _abort(port: int, context: ssl.SSLContext, request: bytes, how: str) -> None:
    """Send ``request`` (a head and part of its body), then go away with ``how``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="localhost")
    writer.write(request)
    await writer.drain()
    if how == "rst":
        # SO_LINGER with a zero timeout: close() sends RST, not FIN.
        raw = writer.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()
    # The gateway's answer, if any, cannot reach us; nothing to read.
    del reader


def _statuses(gateway: RunningGateway, route: str) -> dict[str, int]:
    return {status: n for (label, _, status), n in gateway.app[keys.METRICS].requests.items()
            if label == route}


async def _counted(gateway: RunningGateway, route: str, total: int) -> dict[str, int]:
    """The statuses counted on ``route`` once ``total`` requests were, within a deadline."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        seen = _statuses(gateway, route)
        if sum(seen.values()) >= total:
            return seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {_statuses(gateway, route)} counted on {route}")


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("target", ["/oauth2/token", "/segments/aam"])
async def test_an_aborted_body_is_499_logged_at_info_never_500(
        adv_gateway: RunningGateway, token: str, client_ssl_ctx: ssl.SSLContext,
        caplog: pytest.LogCaptureFixture, target: str, how: str) -> None:
    port = adv_gateway.ports["https"]
    authorization = (basic(CLIENT_ID, CLIENT_SECRET) if target == "/oauth2/token"
                     else f"Bearer {token}")
    body = b"grant_type=client_cre" if target == "/oauth2/token" else SEED_PAYLOAD[:40]
    before = sum(_statuses(adv_gateway, target).values())
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            await _abort(port, client_ssl_ctx, _head(target, authorization, 4096) + body, how)
        counted = await _counted(adv_gateway, target, before + 3)
    assert counted.get("499", 0) == 3, counted
    assert not [s for s in counted if s.startswith("5")], counted
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        (r.levelname, getattr(r, "reason_id", None), r.getMessage()) for r in caplog.records
        if r.levelno >= logging.WARNING]
    closed = [r for r in caplog.records if getattr(r, "reason_id", "") == "client_closed_request"]
    assert len(closed) == 3 and all(r.levelno == logging.INFO for r in closed)
