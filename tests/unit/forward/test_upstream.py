"""gateway/upstream.py against real loopback backends (docs/architecture.md, RFC 9110 §7.6.1)."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request, unused_port
from multidict import CIMultiDict, CIMultiDictProxy
from pytest_aiohttp import AiohttpClient, AiohttpServer
from yarl import URL

from gateway.config import RouteSettings, UpstreamTLSSettings
from gateway.errors import BadGatewayError, GatewayError, GatewayTimeoutError, render
from gateway.forward.upstream import Forwarder, check_reachable

BODY = b'{\r\n"User_DPID": "12345",\r\n"Users": [{"AAM_UUID": "1"}]}\xff\x00 '
IDENTITY: dict[str, Any] = {
    "client_id": "aam", "scope": "segments:write", "request_id": "rid-42",
    "forwarded_proto": "https", "client_address": "203.0.113.7",
}


def route_to(*upstreams: str, **options: Any) -> RouteSettings:
    return RouteSettings(path="/segments/aam", methods=("POST", "GET"), upstreams=upstreams,
                         **options)


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Recorder:
    """A backend that records what arrived and answers what the test sets."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    status: int = 200
    body: bytes = b'{"received":true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.method, request.raw_path, request.headers,
                              await request.read()))
        return web.Response(status=self.status, body=self.body or None, headers=self.headers)

    @property
    def last(self) -> Seen:
        return self.seen[-1]


@pytest.fixture
async def recorder(aiohttp_server: AiohttpServer) -> Recorder:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/segments/aam"))
    return rec


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    async with Forwarder() as started:
        yield started


RawBackend = Callable[[bytes | None], Awaitable[tuple[str, list[int]]]]


@pytest.fixture
async def raw_backend() -> AsyncIterator[RawBackend]:
    """A TCP server that reads one request head and writes fixed bytes (or just closes)."""
    servers: list[asyncio.Server] = []

    async def start(reply: bytes | None) -> tuple[str, list[int]]:
        hits: list[int] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            hits.append(1)
            if reply is not None:
                writer.write(reply)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/segments/aam", hits

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def mocked(method: str = "POST", path: str = "/segments/aam",
           headers: list[tuple[str, str]] | None = None) -> web.Request:
    return make_mocked_request(method, path, headers=CIMultiDict(headers or []))


async def front(aiohttp_client: AiohttpClient, route: RouteSettings,
                tls: UpstreamTLSSettings | None = None) -> TestClient[web.Request, web.Application]:
    """A minimal gateway: read the body, forward it, render errors as the real one does."""
    forwarder = Forwarder(tls)

    async def handle(request: web.Request) -> web.Response:
        try:
            return await forwarder.forward(request, route, await request.read(), **IDENTITY)
        except GatewayError as exc:
            return render(exc)

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        async with forwarder:
            yield

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    app.cleanup_ctx.append(lifetime)
    return await aiohttp_client(app, auto_decompress=False)


# -- request headers ------------------------------------------------------------------

async def test_hop_by_hop_and_connection_named_request_headers_are_dropped(
        forwarder: Forwarder, recorder: Recorder) -> None:
    request = mocked(headers=[
        ("Host", "api.partner.com"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "secret"),
        ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-Sum"),
        ("Upgrade", "websocket"), ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Connection", "keep-alive"), ("Transfer-Encoding", "chunked"),
        ("Content-Length", "999"), ("Content-Encoding", "gzip"), ("Expect", "100-continue"),
        ("User-Agent", "Adobe Audience Manager Iris"), ("Content-Type", "application/json"),
        ("X-Multi", "a"), ("X-Multi", "b"),
    ])
    response = await forwarder.forward(request, route_to(recorder.url), BODY, **IDENTITY)
    assert response.status == 200
    seen = recorder.last.headers
    for name in ("Connection", "X-Hop", "Keep-Alive", "TE", "Trailer", "Upgrade",
                 "Proxy-Authorization", "Proxy-Connection", "Transfer-Encoding",
                 "Content-Encoding", "Expect", "Accept-Encoding"):
        assert name not in seen, name
    assert seen["Host"] == recorder.url.split("/")[2]
    assert seen["Content-Length"] == str(len(BODY))
    assert seen["User-Agent"] == "Adobe Audience Manager Iris"
    assert seen["Content-Type"] == "application/json"
    assert seen.getall("X-Multi") == ["a", "b"]
    assert recorder.last.body == BODY


@pytest.mark.parametrize("forward_authorization", [False, True])
async def test_authorization_reaches_the_backend_only_when_the_route_says_so(
        forwarder: Forwarder, recorder: Recorder, forward_authorization: bool) -> None:
    request = mocked(headers=[("Authorization", "Bearer abc.def.ghi")])
    route = route_to(recorder.url, forward_authorization=forward_authorization)
    await forwarder.forward(request, route, BODY, **IDENTITY)
    assert recorder.last.headers.get("Authorization") == (
        "Bearer abc.def.ghi" if forward_authorization else None)


async def test_identity_headers_come_from_the_token_and_spoofed_copies_go(
        forwarder: Forwarder, recorder: Recorder) -> None:
    spoofed = [("X-Gateway-Client-Id", "admin"), ("x-gateway-scope", "everything")]
    await forwarder.forward(mocked(headers=spoofed), route_to(recorder.url), BODY, **IDENTITY)
    assert recorder.last.headers.getall("X-Gateway-Client-Id") == ["aam"]
    assert recorder.last.headers.getall("X-Gateway-Scope") == ["segments:write"]

    route = route_to(recorder.url, identity_headers=False)
    await forwarder.forward(mocked(headers=spoofed), route, BODY, **IDENTITY)
    assert "X-Gateway-Client-Id" not in recorder.last.headers
    assert "X-Gateway-Scope" not in recorder.last.headers


async def test_forwarded_headers_and_request_id_are_the_gateways(
        forwarder: Forwarder, recorder: Recorder) -> None:
    request = mocked(headers=[
        ("Host", "api.partner.com"), ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", "evil.example"),
        ("X-Request-Id", "caller-chosen"), ("Forwarded", "for=10.0.0.1;proto=http"),
    ])
    await forwarder.forward(request, route_to(recorder.url), BODY, **IDENTITY)
    seen = recorder.last.headers
    assert seen.getall("X-Forwarded-For") == ["203.0.113.7"]
    assert seen.getall("X-Forwarded-Proto") == ["https"]
    assert seen.getall("X-Forwarded-Host") == ["api.partner.com"]
    assert seen.getall("X-Request-Id") == ["rid-42"]
    assert "Forwarded" not in seen


# -- method, query, body --------------------------------------------------------------

async def test_get_with_a_body_keeps_method_query_and_bytes(
        aiohttp_client: AiohttpClient, recorder: Recorder) -> None:
    # Through a real server: its parser keeps the query as sent (a mocked request re-quotes).
    client = await front(aiohttp_client, route_to(recorder.url))
    response = await client.get(URL("/segments/aam?a=1&b=%2F%20x", encoded=True), data=BODY)
    assert response.status == 200
    assert recorder.last.method == "GET"
    assert recorder.last.raw_path == "/segments/aam?a=1&b=%2F%20x"
    assert recorder.last.body == BODY


async def test_query_joins_one_already_in_the_upstream_url(
        forwarder: Forwarder, recorder: Recorder) -> None:
    route = route_to(recorder.url + "?partner=7")
    await forwarder.forward(mocked("POST", "/segments/aam?a=1"), route, BODY, **IDENTITY)
    assert recorder.last.raw_path == "/segments/aam?partner=7&a=1"


# -- status mapping -------------------------------------------------------------------

@pytest.mark.parametrize(("backend", "success_status", "expected"), [
    (204, 200, 200), (201, 200, 200), (204, None, 204), (202, None, 202),
    (500, 200, 500), (404, 200, 404), (302, 200, 302),
])
async def test_status_is_relayed_and_only_2xx_becomes_success_status(
        forwarder: Forwarder, recorder: Recorder, backend: int, success_status: int | None,
        expected: int) -> None:
    recorder.status = backend
    recorder.body = b"" if backend == 204 else b'{"x":1}'
    recorder.headers = {"Location": "/elsewhere"} if backend == 302 else {}
    route = route_to(recorder.url, success_status=success_status)
    response = await forwarder.forward(mocked(), route, BODY, **IDENTITY)
    assert response.status == expected
    assert response.body == recorder.body
    assert len(recorder.seen) == 1  # a redirect is relayed, never followed


# -- response headers and encoding ----------------------------------------------------

async def test_hop_by_hop_response_headers_are_dropped(
        aiohttp_client: AiohttpClient, raw_backend: RawBackend) -> None:
    url, _ = await raw_backend(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Authenticate: Basic\r\nTrailer: X-Sum\r\nServer: LegacyIIS/5.0\r\n"
        b"X-Kept: yes\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    client = await front(aiohttp_client, route_to(url))
    response = await client.post("/segments/aam", data=BODY)
    assert response.status == 200
    assert await response.read() == b"{}"
    assert response.headers["X-Kept"] == "yes"
    assert response.headers["Content-Length"] == "2"
    for name in ("X-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Transfer-Encoding"):
        assert name not in response.headers, name
    assert "LegacyIIS" not in response.headers.get("Server", "")


async def test_large_json_is_gzipped_for_a_caller_that_accepts_it(
        aiohttp_client: AiohttpClient, recorder: Recorder) -> None:
    recorder.body = b'{"items":[' + b",".join(b'"segment"' for _ in range(400)) + b"]}"
    client = await front(aiohttp_client, route_to(recorder.url))
    zipped = await client.post("/segments/aam", data=BODY, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(await zipped.read()) == recorder.body
    assert recorder.last.headers["Accept-Encoding"] == "gzip"  # passed on as the caller said

    for refused in ("identity", "gzip;q=0, *"):
        plain = await client.post("/segments/aam", data=BODY,
                                  headers={"Accept-Encoding": refused})
        assert "Content-Encoding" not in plain.headers
        assert await plain.read() == recorder.body


async def test_small_or_backend_encoded_bodies_are_relayed_as_they_are(
        aiohttp_client: AiohttpClient, recorder: Recorder) -> None:
    client = await front(aiohttp_client, route_to(recorder.url))
    small = await client.post("/segments/aam", data=BODY, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers
    assert await small.read() == recorder.body

    recorder.body = gzip.compress(b'{"big":"' + b"x" * 4000 + b'"}')
    recorder.headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    encoded = await client.post("/segments/aam", data=BODY, headers={"Accept-Encoding": "gzip"})
    assert encoded.headers["Content-Encoding"] == "gzip"
    assert await encoded.read() == recorder.body


# -- failures -------------------------------------------------------------------------

async def test_connection_refused_is_502(forwarder: Forwarder) -> None:
    route = route_to(f"http://127.0.0.1:{unused_port()}/segments/aam")
    with pytest.raises(BadGatewayError):
        await forwarder.forward(mocked(), route, BODY, **IDENTITY)
    assert forwarder.errors["connect"] == 1


@pytest.fixture
async def slow_backend(aiohttp_server: AiohttpServer) -> AsyncIterator[str]:
    """A backend that answers only after the test ends (2 s at most): its URL."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 2)
        return web.Response()

    app = web.Application()
    app.router.add_post("/segments/aam", slow)
    server = await aiohttp_server(app)
    yield str(server.make_url("/segments/aam"))
    release.set()


async def test_slow_backend_past_the_route_timeout_is_504(
        aiohttp_client: AiohttpClient, slow_backend: str) -> None:
    client = await front(aiohttp_client, route_to(slow_backend, timeout_seconds=0.2))
    response = await client.post("/segments/aam", data=BODY)
    assert response.status == 504
    assert (await response.json())["error"] == "gateway_timeout"


@pytest.mark.parametrize("method", ["POST", "GET", "PUT"])
@pytest.mark.parametrize("reply", [b"garbage\r\n\r\n", None])
async def test_garbage_or_a_dropped_connection_is_502_and_never_retried(
        forwarder: Forwarder, recorder: Recorder, raw_backend: RawBackend,
        reply: bytes | None, method: str) -> None:
    broken, hits = await raw_backend(reply)
    with pytest.raises(BadGatewayError):
        await forwarder.forward(mocked(method), route_to(broken, recorder.url), BODY,
                                **IDENTITY)
    assert hits == [1]
    assert recorder.seen == []  # it may have reached the first backend: not sent twice


async def test_failover_to_the_next_upstream_when_the_first_is_unreachable(
        forwarder: Forwarder, recorder: Recorder) -> None:
    route = route_to(f"http://127.0.0.1:{unused_port()}/segments/aam", recorder.url)
    response = await forwarder.forward(mocked(), route, BODY, **IDENTITY)
    assert response.status == 200
    assert recorder.last.body == BODY


async def test_timeout_is_not_failed_over(
        forwarder: Forwarder, recorder: Recorder, slow_backend: str) -> None:
    route = route_to(slow_backend, recorder.url, timeout_seconds=0.2)
    with pytest.raises(GatewayTimeoutError):
        await forwarder.forward(mocked(), route, BODY, **IDENTITY)
    assert recorder.seen == []


async def test_forward_before_start_is_a_programming_error(recorder: Recorder) -> None:
    with pytest.raises(RuntimeError):
        await Forwarder().forward(mocked(), route_to(recorder.url), BODY, **IDENTITY)


# -- https upstreams ------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def tls_backend(aiohttp_server: AiohttpServer, ca: trustme.CA, recorder: Recorder,
                      *, require_client_cert: bool = False) -> str:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    server = await aiohttp_server(app, ssl=context)
    return str(server.make_url("/segments/aam"))


async def test_https_upstream_verified_against_the_configured_ca(
        aiohttp_server: AiohttpServer, ca: trustme.CA, recorder: Recorder,
        tmp_path: Path) -> None:
    url = await tls_backend(aiohttp_server, ca, recorder)
    assert url.startswith("https://")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with Forwarder(UpstreamTLSSettings(ca_file=ca_file)) as trusting:
        response = await trusting.forward(mocked(), route_to(url), BODY, **IDENTITY)
    assert response.status == 200
    assert recorder.last.body == BODY

    async with Forwarder() as system_cas_only:
        with pytest.raises(BadGatewayError):
            await system_cas_only.forward(mocked(), route_to(url), BODY, **IDENTITY)


async def test_https_upstream_with_a_client_certificate(
        aiohttp_server: AiohttpServer, ca: trustme.CA, recorder: Recorder,
        tmp_path: Path) -> None:
    url = await tls_backend(aiohttp_server, ca, recorder, require_client_cert=True)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    identity = ca.issue_cert("gateway.example")
    identity.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    identity.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    settings = UpstreamTLSSettings(ca_file=tmp_path / "ca.pem",
                                   client_cert_file=tmp_path / "client.pem",
                                   client_key_file=tmp_path / "client.key")
    async with Forwarder(settings) as mutual:
        response = await mutual.forward(mocked(), route_to(url), BODY, **IDENTITY)
    assert response.status == 200
    assert recorder.last.body == BODY


# -- readiness probe ------------------------------------------------------------------

async def test_check_reachable(recorder: Recorder) -> None:
    assert await check_reachable(recorder.url) is None
    port = unused_port()
    reason = await check_reachable(f"http://user:pw@127.0.0.1:{port}/x")
    assert reason is not None
    assert f"127.0.0.1:{port}" in reason
    assert "pw" not in reason
