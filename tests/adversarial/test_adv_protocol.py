"""The HTTP/1.1 edges an outside attack run found, over real TLS (docs/security.md):

* ``Expect: 100-continue`` is answered only once the request has earned its body (the bearer
  token on a route, the credential at the token endpoint); a refusal comes at once instead,
  and closes the connection, on every listener;
* no ``Server`` header names a version, and request lines other than HTTP/1.0 or 1.1 are
  refused ``505`` with the JSON error body;
* one source address cannot take every connection slot (``server.max_connections_per_address``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gateway.config import Settings
from gateway.serve.server import RunningGateway

from adv_harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    SEED_CREDENTIAL,
    SEED_PAYLOAD,
    assert_error_body,
    backend_count,
    basic,
    raw_exchange,
    read_answer,
)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
GRANT = b"grant_type=client_credentials"


async def _open(port: int, context: ssl.SSLContext | None, source: str = "127.0.0.1"
                ) -> Streams:
    return await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                         server_hostname="localhost" if context else None,
                                         local_addr=(source, 0))


async def _first_head(reader: asyncio.StreamReader) -> tuple[str, int]:
    """The status line and status of the first answer, interim or final."""
    head = await reader.readuntil(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    return line, int(line.split(" ")[1])


def _head(target: str, authorization: str | None, content_type: str, length: int) -> bytes:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    return (f"POST {target} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: {content_type}"
            f"\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n").encode()


def _push_head(authorization: str | None) -> bytes:
    return _head("/segments/aam", authorization, "application/json", len(SEED_PAYLOAD))


def _token_head(authorization: str | None) -> bytes:
    return _head("/oauth2/token", authorization, "application/x-www-form-urlencoded",
                 len(GRANT))


# -- Expect: 100-continue ----------------------------------------------------------------------

async def test_100_continue_only_after_the_credential_passes(
        adv_gateway: RunningGateway, token: str, backend: tuple[str, Any],
        client_ssl_ctx: ssl.SSLContext) -> None:
    https, http = adv_gateway.ports["https"], adv_gateway.ports["http"]
    before = await backend_count(backend[0])
    refused = {
        "no token": (https, _push_head(None), 401),
        "forged token": (https, _push_head(f"Bearer {token[:-4]}AAAA"), 401),
        "unknown route": (https, _head("/nowhere", f"Bearer {token}", "application/json", 9),
                          404),
        "wrong media type": (https, _head("/segments/aam", f"Bearer {token}", "text/plain", 9),
                             415),
        "wrong secret": (https, _token_head(basic(CLIENT_ID, "wrong")), 401),
        "plain-HTTP listener": (http, _push_head(f"Bearer {token}"), 403),
        "plain-HTTP token endpoint": (http, _token_head(f"Basic {SEED_CREDENTIAL}"), 403),
    }
    async with asyncio.timeout(20):
        for name, (port, head, status) in refused.items():
            reader, writer = await _open(port, client_ssl_ctx if port == https else None)
            writer.write(head)
            # Before: "HTTP/1.1 100 Continue" first, whatever the request held.
            assert (await _first_head(reader))[1] == status, name
            writer.close()
        # A refusal before the body closes the connection: the body may follow or not.
        reader, writer = await _open(https, client_ssl_ctx)
        writer.write(_push_head(None))
        answer = await read_answer(reader)
        assert answer.status == 401 and answer.headers.get("connection") == "close"
        assert_error_body(answer)
        async with asyncio.timeout(5):  # at once, not after a 10 s lingering read
            assert await reader.read() == b""
        writer.close()
        accepted = {
            "bearer": (_push_head(f"Bearer {token}"), SEED_PAYLOAD),
            "RFC 6749 Basic": (_token_head(basic(CLIENT_ID, CLIENT_SECRET)), GRANT),
            "opaque Basic": (_token_head(f"Basic {SEED_CREDENTIAL}"), GRANT),
        }
        for name, (head, body) in accepted.items():
            reader, writer = await _open(https, client_ssl_ctx)
            writer.write(head)
            assert await _first_head(reader) == ("HTTP/1.1 100 Continue", 100), name
            writer.write(body)
            assert (await read_answer(reader)).status == 200, name
            writer.close()
    assert await backend_count(backend[0]) == before + 1


# -- fingerprinting and other versions -----------------------------------------------------------

async def test_no_server_header_names_a_version(
        adv_gateway: RunningGateway, token: str, client_ssl_ctx: ssl.SSLContext,
        session: aiohttp.ClientSession) -> None:
    port = adv_gateway.ports["https"]
    base = f"https://localhost:{port}"
    servers = []
    for method, path, headers, data in (
            ("POST", "/segments/aam", {"Authorization": f"Bearer {token}",
                                       "Content-Type": "application/json"}, SEED_PAYLOAD),
            ("POST", "/segments/aam", {}, SEED_PAYLOAD),
            ("GET", "/nowhere", {}, None),
            ("GET", "/.well-known/jwks.json", {}, None),
            ("POST", "/oauth2/token", {"Authorization": f"Basic {SEED_CREDENTIAL}",
                                       "Content-Type": "application/x-www-form-urlencoded"},
             GRANT)):
        async with session.request(method, base + path, headers=headers, data=data) as answer:
            servers.append(answer.headers.getall("Server", []))
    bad_head = await raw_exchange(port, client_ssl_ctx,
                                  b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x00\r\n\r\n")
    assert bad_head[0].status == 400
    servers.append([bad_head[0].headers["server"]] if "server" in bad_head[0].headers else [])
    # Before: "Python/3.11 aiohttp/3.14.5" on every answer.
    assert all(values in ([], ["gateway"]) for values in servers), servers


async def test_request_lines_other_than_http_1_get_505(
        adv_gateway: RunningGateway, token: str, backend: tuple[str, Any],
        client_ssl_ctx: ssl.SSLContext) -> None:
    port = adv_gateway.ports["https"]
    before = await backend_count(backend[0])
    for line in (b"GET / HTTP/0.9", b"GET /", b"GET / HTTP/2.0",
                 b"POST /segments/aam HTTP/2.0"):
        request = (line + b"\r\nHost: localhost\r\nAuthorization: Bearer " + token.encode()
                   + b"\r\nContent-Type: application/json\r\nContent-Length: "
                   + str(len(SEED_PAYLOAD)).encode() + b"\r\n\r\n" + SEED_PAYLOAD)
        async with asyncio.timeout(10):
            reader, writer = await _open(port, client_ssl_ctx)
            writer.write(request)
            raw = await reader.read()  # the answer, then the close
            writer.close()
        # Before: accepted and answered in kind ("HTTP/2.0 200 OK").
        assert raw.startswith(b"HTTP/1.1 505 "), (line, raw[:60])
        body = raw.split(b"\r\n\r\n", 1)[1]
        assert assert_error_body((505, body))["error"] == "invalid_request"
        assert b"aiohttp" not in raw
    assert await backend_count(backend[0]) == before


# -- connections per source address --------------------------------------------------------------

async def _busy(port: int, context: ssl.SSLContext, source: str) -> Streams:
    """A connection holding a request head in progress: never idle, never evicted."""
    reader, writer = await _open(port, context, source)
    writer.write(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    return reader, writer


async def _status_from(port: int, context: ssl.SSLContext, source: str) -> int:
    """The status of a request on a new connection; 0 when the connection was closed
    before its TLS handshake (past a cap: serve/acceptor.py)."""
    try:
        reader, writer = await _open(port, context, source)
    except (ConnectionError, ssl.SSLError):
        return 0
    try:
        writer.write(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        return (await read_answer(reader)).status
    finally:
        writer.close()


async def _until_refused(port: int, context: ssl.SSLContext, source: str) -> None:
    """``source``'s next connection refused: closed before its handshake (0), or 503 when
    it got in as a slot freed; 404 until the server has read the partial heads. Bounded."""
    for _ in range(300):
        status = await _status_from(port, context, source)
        if status in (0, 503):
            return
        assert status == 404
        await asyncio.sleep(0.01)
    raise AssertionError(f"{source} was never refused")


async def _open_count(streams: list[Streams]) -> int:
    still = 0
    for reader, _ in streams:
        try:
            data = await asyncio.wait_for(reader.read(1), timeout=0.2)
        except TimeoutError:
            still += 1  # nothing to read and no EOF: open
        else:
            assert data == b""
    return still


@pytest.fixture
def capped(backend: tuple[str, Any], adv_config: Callable[..., dict[str, Any]],
           write_config: Callable[[dict[str, Any]], Settings],
           start: Callable[[Settings], Awaitable[RunningGateway]]
           ) -> Callable[[], Awaitable[RunningGateway]]:
    async def make() -> RunningGateway:
        config = adv_config(backend[0] + "/segments/aam")
        config["server"]["max_connections_per_address"] = 3
        config["server"]["trusted_proxies"] = ["127.0.0.3/32"]
        return await start(write_config(config))
    return make


async def test_one_address_cannot_take_every_connection(
        capped: Callable[[], Awaitable[RunningGateway]], client_ssl_ctx: ssl.SSLContext) -> None:
    port = (await capped()).ports["https"]
    held: list[Streams] = []
    try:
        async with asyncio.timeout(20):
            # Idle connections past the address's cap evict that address's oldest idle one.
            idle = [await _open(port, client_ssl_ctx) for _ in range(6)]
            held += idle
            assert await _status_from(port, client_ssl_ctx, "127.0.0.1") == 404
            assert 1 <= await _open_count(idle) <= 3
            for _, writer in idle:
                writer.close()
            # Busy ones are never evicted: past the cap the address gets 503 ...
            held += [await _busy(port, client_ssl_ctx, "127.0.0.1") for _ in range(3)]
            await _until_refused(port, client_ssl_ctx, "127.0.0.1")
            # ... while another address, and a trusted proxy carrying many callers, are
            # served (before: one address could hold all 4,096 slots).
            assert await _status_from(port, client_ssl_ctx, "127.0.0.2") == 404
            held += [await _busy(port, client_ssl_ctx, "127.0.0.3") for _ in range(5)]
            assert await _status_from(port, client_ssl_ctx, "127.0.0.3") == 404
    finally:
        for _, writer in held:
            with contextlib.suppress(Exception):
                writer.close()


async def test_the_default_cap_holds_one_address_to_256_busy_connections(
        adv_gateway: RunningGateway, client_ssl_ctx: ssl.SSLContext) -> None:
    # The shipped default, with no key in the file.
    port = adv_gateway.ports["https"]
    held: list[Streams] = []
    try:
        async with asyncio.timeout(60):
            held += await asyncio.gather(*(_busy(port, client_ssl_ctx, "127.0.0.1")
                                           for _ in range(256)))
            await _until_refused(port, client_ssl_ctx, "127.0.0.1")
            assert await _status_from(port, client_ssl_ctx, "127.0.0.2") == 404
    finally:
        for _, writer in held:
            with contextlib.suppress(Exception):
                writer.close()
