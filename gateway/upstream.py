"""Forwarding an accepted request to the legacy backend and relaying its answer (SPEC §5.3).

One ``aiohttp.ClientSession`` per application holds a keep-alive pool towards the backends.
Headers are rewritten as a proxy must:

* RFC 9110 §7.6.1: ``Connection``, every field it names, and the hop-by-hop fields
  (``Keep-Alive``, ``Proxy-Authenticate``, ``Proxy-Authorization``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``) are removed in both directions.
* ``X-Forwarded-For``/``-Proto``/``-Host`` (the de-facto form of RFC 7239's ``Forwarded``)
  and ``X-Request-Id`` are set by the gateway; caller copies (and ``Forwarded``) are dropped.
* RFC 6750 tokens never reach the backend unless the route says ``forward_authorization``;
  ``X-Gateway-Client-Id``/``X-Gateway-Scope`` come only from the verified token.

Failover: the next upstream is tried only when the connection could not be established; a
request that may have reached a backend is never sent again, to it or to another. Connect
failures and broken answers are ``BadGatewayError`` (502), timeouts ``GatewayTimeoutError``
(504).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.errors import BadGatewayError, GatewayTimeoutError
from gateway.settings import RouteSettings, UpstreamTLSSettings

__all__ = ["HOP_BY_HOP", "Forwarder", "check_reachable"]

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1, plus Proxy-Connection, which old clients still send in its place.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "proxy-connection",
})
# Host and Content-Length are the client library's to set for the new connection and body;
# Content-Encoding because the header stage already inflated the body; Expect because the
# body is already read (a 100 Continue from the backend would mean nothing to anyone).
_REQUEST_DROP = HOP_BY_HOP | {
    "host", "content-length", "content-encoding", "expect",
    # SECURITY: set by the gateway only; a caller's copies would be believed by the backend.
    "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
    "x-gateway-client-id", "x-gateway-scope",
}
# Content-Length is recomputed for the body we send; Server would advertise the legacy
# software to the internet (nginx hides it the same way).
_RESPONSE_DROP = HOP_BY_HOP | {"content-length", "server"}
# aiohttp invents these when absent (its Accept-Encoding would make the backend compress
# for a caller that never asked). Skipping costs a header copy per request, so only when one
# is absent; its other default, "Accept: */*", means what a missing Accept means (RFC 9110
# §12.5.1) and stays.
_AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Content-Type")
_GZIP_MIN_BYTES = 1024
# aiohttp warns (an error under our test settings) when asked to clean up closed TLS
# transports on interpreters that fixed the leak (CPython gh-118960: 3.12.8, 3.13.1).
_NEEDS_CLEANUP_CLOSED = (
    sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
)


@dataclass(frozen=True, slots=True)
class _Upstream:
    url: URL
    raw: str  # the encoded URL text, to append a query string without re-quoting
    name: str  # scheme://host:port only: safe to log (no userinfo, no path)

    def with_query(self, raw_query: str) -> URL:
        separator = "&" if self.url.raw_query_string else "?"
        return URL(self.raw + separator + raw_query, encoded=True)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about a route that does not change between requests, computed once."""

    route: RouteSettings
    upstreams: tuple[_Upstream, ...]
    drop: frozenset[str]
    timeout: aiohttp.ClientTimeout


class Forwarder:
    """Sends requests to a route's upstreams over one pooled session (SPEC §5.3)."""

    def __init__(self, tls: UpstreamTLSSettings | None = None, *, limit: int = 256,
                 keepalive_timeout: float = 4.0) -> None:
        # Built here, not in start(): a bad CA or client key stops start-up, not a request.
        self._ssl = _client_ssl_context(tls or UpstreamTLSSettings())
        self._limit = limit
        # Below the 5 s idle timeout of Apache and many legacy servers, so the gateway
        # retires a pooled connection before the backend closes it under a request.
        self._keepalive_timeout = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None
        self._plans: dict[int, _Plan] = {}
        self.errors: Counter[str] = Counter()  # reason id -> count, for /metrics

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            # One legacy backend: the overall limit is the per-host one.
            limit=self._limit, limit_per_host=0, ttl_dns_cache=300,
            keepalive_timeout=self._keepalive_timeout,
            enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED, ssl=self._ssl,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # a proxy must not keep the backend's cookies
            auto_decompress=False,  # the backend's bytes are relayed with their encoding
            timeout=aiohttp.ClientTimeout(total=None),  # each route brings its own
        )
        # aiohttp re-sends a GET or PUT once when the connection drops before the answer
        # (RFC 9112 §9.3.1 permits it), even after the backend has read the request. The
        # seed pushes with GET, and SPEC §5.3 sends nothing twice; aiohttp 3.14 has no
        # public switch for this (pinned by test_upstream's never-retried test).
        session._retry_connection = False
        self._session = session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Forwarder:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def forward(self, request: web.Request, route: RouteSettings, body: bytes, *,
                      client_id: str | None, scope: str | None, request_id: str,
                      forwarded_proto: str, client_address: str) -> web.Response:
        """Send ``body`` with ``request``'s method, query and cleaned headers to the route's
        upstreams; return the backend's answer or raise 502/504."""
        session = self._session
        if session is None:
            raise RuntimeError("Forwarder.start() has not been awaited")
        plan = self._plans.get(id(route))
        if plan is None or plan.route is not route:
            plan = self._plan(route)
        headers = _request_headers(request.headers, plan.drop)
        headers["X-Forwarded-For"] = client_address
        headers["X-Forwarded-Proto"] = forwarded_proto
        host = request.headers.get("Host")
        if host:
            headers["X-Forwarded-Host"] = host
        headers["X-Request-Id"] = request_id
        if route.identity_headers:
            if client_id is not None:
                headers["X-Gateway-Client-Id"] = client_id
            if scope is not None:
                headers["X-Gateway-Scope"] = scope
        skip = None if ("User-Agent" in headers and "Accept-Encoding" in headers
                        and "Content-Type" in headers) else _AUTO_HEADERS
        raw_query = request.rel_url.raw_query_string
        method = request.method
        data = body or None  # no invented "Content-Length: 0" on a bodiless GET

        timeout = plan.timeout
        started = asyncio.get_running_loop().time()
        last = len(plan.upstreams) - 1
        for index, upstream in enumerate(plan.upstreams):
            if index:
                remaining = route.timeout_seconds - (asyncio.get_running_loop().time() - started)
                if remaining <= 0:
                    self.errors["timeout"] += 1
                    raise GatewayTimeoutError()
                timeout = aiohttp.ClientTimeout(total=remaining,
                                                sock_connect=plan.timeout.sock_connect)
            url = upstream.with_query(raw_query) if raw_query else upstream.url
            try:
                async with session.request(method, url, data=data, headers=headers,
                                           skip_auto_headers=skip, timeout=timeout,
                                           allow_redirects=False) as answer:
                    payload = await answer.read()
                    return _response(request, answer, payload, route.success_status)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # The connection never opened, so this backend never saw the request and
                # the next one may have it.
                reason = "connect_timeout" if isinstance(exc, TimeoutError) else "connect"
                self.errors[reason] += 1
                log.warning("upstream unreachable reason_id=%s upstream=%r error=%r",
                            reason, upstream.name, type(exc).__name__)
                if index < last:
                    continue
                if isinstance(exc, TimeoutError):
                    raise GatewayTimeoutError() from exc
                raise BadGatewayError() from exc
            except TimeoutError as exc:
                self.errors["timeout"] += 1
                log.warning("upstream timeout reason_id=timeout upstream=%r seconds=%r",
                            upstream.name, route.timeout_seconds)
                raise GatewayTimeoutError() from exc
            except aiohttp.ClientError as exc:
                # Reset, disconnect or an unparsable answer: the request may have arrived,
                # so it is not tried elsewhere.
                self.errors["protocol"] += 1
                log.warning("upstream failed reason_id=protocol upstream=%r error=%r",
                            upstream.name, type(exc).__name__)
                raise BadGatewayError() from exc
        raise AssertionError("a route has at least one upstream")  # pragma: no cover

    def _plan(self, route: RouteSettings) -> _Plan:
        drop = _REQUEST_DROP if route.forward_authorization else _REQUEST_DROP | {"authorization"}
        count = len(route.upstreams)
        # With several upstreams one unreachable host may not eat the whole budget.
        connect = route.timeout_seconds / count if count > 1 else None
        plan = _Plan(
            route=route,
            upstreams=tuple(_upstream(u) for u in route.upstreams),
            drop=frozenset(drop),
            timeout=aiohttp.ClientTimeout(total=route.timeout_seconds, sock_connect=connect),
        )
        if len(self._plans) >= 1024:
            self._plans.clear()  # routes replaced by reloads: bound what old ones keep alive
        # Keyed by identity: hashing a frozen route hashes all its fields on every request.
        self._plans[id(route)] = plan
        return plan


async def check_reachable(url: str | URL, *, connect_seconds: float = 2.0) -> str | None:
    """A TCP connect probe for ``/readyz``: ``None`` when ``url``'s host accepts a
    connection, otherwise a short reason (host and port only, never the full URL)."""
    target = URL(url)
    host, port = target.raw_host, target.port
    if not host or port is None:
        return "not an absolute http(s) URL"
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(connect_seconds):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"connect to {where} timed out"
    except OSError as exc:
        return f"connect to {where} failed: {exc.strerror or type(exc).__name__}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _upstream(text: str) -> _Upstream:
    url = URL(text)
    return _Upstream(url=url, raw=str(url), name=f"{url.scheme}://{url.host_port_subcomponent}")


def _client_ssl_context(tls: UpstreamTLSSettings) -> ssl.SSLContext:
    # create_default_context verifies the chain and the host name, TLS 1.2 at least;
    # without a ca_file it trusts the system store.
    context = ssl.create_default_context(
        cafile=str(tls.ca_file) if tls.ca_file is not None else None
    )
    if tls.client_cert_file is not None:
        context.load_cert_chain(
            str(tls.client_cert_file),
            str(tls.client_key_file) if tls.client_key_file is not None else None,
        )
    return context


@lru_cache(maxsize=256)
def _connection_tokens(value: str) -> frozenset[str]:
    """The field names a Connection header lists (RFC 9110 §7.6.1), lower-cased."""
    return frozenset(t for t in (p.strip().lower() for p in value.split(",")) if t)


def _dropped(headers: CIMultiDictProxy[str], base: frozenset[str]) -> frozenset[str]:
    if "Connection" not in headers:
        return base
    return base | _connection_tokens(",".join(headers.getall("Connection")))


def _request_headers(headers: CIMultiDictProxy[str], base: frozenset[str]) -> CIMultiDict[str]:
    drop = _dropped(headers, base)
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in drop])


def _response(request: web.Request, answer: aiohttp.ClientResponse, payload: bytes,
              success_status: int | None) -> web.Response:
    status = answer.status
    # IRIS counts only 200 as delivered; never turn a non-2xx into success.
    if success_status is not None and 200 <= status < 300:
        status = success_status
    source = answer.headers
    drop = _dropped(source, _RESPONSE_DROP)
    # A list, not a CIMultiDict: web.Response copies whatever it is given into a new one.
    headers = [(k, v) for k, v in source.items() if k.lower() not in drop]
    response = web.Response(status=status, body=payload, headers=headers)
    if (len(payload) > _GZIP_MIN_BYTES and "Content-Encoding" not in response.headers
            and _compressible(answer.content_type)):
        # The representation now depends on Accept-Encoding, compressed or not.
        response.headers.add("Vary", "Accept-Encoding")
        if _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            response.enable_compression(web.ContentCoding.gzip)
    return response


def _compressible(content_type: str) -> bool:
    return (content_type.startswith("text/") or content_type.endswith(("/json", "+json"))
            or content_type.endswith(("/xml", "+xml")) or content_type == "application/javascript")


@lru_cache(maxsize=64)
def _accepts_gzip(value: str) -> bool:
    """RFC 9110 §12.5.3: gzip (or ``*``) listed with a non-zero weight; an explicit
    ``gzip;q=0`` wins over ``*``."""
    weights: dict[str, float] = {}
    for item in value.lower().split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, number = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(number)
                except ValueError:
                    weight = 0.0
        weights.setdefault(coding.strip(), weight)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False
