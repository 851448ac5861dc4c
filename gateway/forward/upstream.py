"""Forwarding an accepted request to the legacy backend and relaying its answer
(docs/architecture.md).

One keep-alive connection pool per backend origin (``h1pool.py``), created with the
application and closed with it. The request's header block is built by
``headers.request_fields`` (hop-by-hop fields, ``X-Forwarded-*``, identity headers,
the bearer token kept back), the same function spool delivery uses; the answer's
hop-by-hop fields and ``Server`` are removed here. ``forward`` is the direct path (build,
send, relay the answer); ``send`` takes an already-built header block (spool delivery).

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
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web
from yarl import URL

from gateway.config import RouteSettings, UpstreamTLSSettings
from gateway.errors import BadGatewayError, GatewayTimeoutError
from gateway.forward.h1pool import (
    ConnectFailed,
    ConnectTimedOut,
    H1Pool,
    UpstreamAnswer,
    UpstreamBroken,
)
from gateway.forward.headers import HOP_BY_HOP, connection_tokens, request_fields
from gateway.keys import UPSTREAM_STATUS
from gateway.mediatype import accepts_gzip

__all__ = ["HOP_BY_HOP", "Forwarder", "check_reachable"]

log = logging.getLogger(__name__)

# Content-Length is recomputed for the body we send; Server would advertise the legacy
# software to the internet (nginx hides it the same way).
_RESPONSE_DROP = HOP_BY_HOP | {"content-length", "server"}
_GZIP_MIN_BYTES = 1024

@dataclass(frozen=True, slots=True)
class _Upstream:
    origin: tuple[str, str, int]  # scheme, host, port: the pool's key
    host_header: str  # what the backend expects in Host
    target: str  # the encoded path and query of the route's URL
    name: str  # scheme://host:port only: safe to log (no userinfo, no path)

    def request_target(self, raw_query: str) -> str:
        if not raw_query:
            return self.target
        return self.target + ("&" if "?" in self.target else "?") + raw_query


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about a route that does not change between requests, computed once."""

    route: RouteSettings
    upstreams: tuple[_Upstream, ...]
    connect_timeout: float


class Forwarder:
    """Sends requests to a route's upstreams over pooled keep-alive connections."""

    def __init__(self, tls: UpstreamTLSSettings | None = None, *, limit: int = 256,
                 keepalive_timeout: float = 4.0) -> None:
        # Built here, not in start(): a bad CA or client key stops start-up, not a request.
        self._ssl = _client_ssl_context(tls or UpstreamTLSSettings())
        self._limit = limit
        # Below the 5 s idle timeout of Apache and many legacy servers, so the gateway
        # retires a pooled connection before the backend closes it under a request.
        self._keepalive_timeout = keepalive_timeout
        self._pools: dict[tuple[str, str, int], H1Pool] | None = None
        self._plans: dict[int, _Plan] = {}
        self.errors: Counter[str] = Counter()  # reason id -> count, for /metrics

    async def start(self) -> None:
        self.open()

    def open(self) -> None:
        """``start`` without a wait (the deliverer's thread opens its own forwarders)."""
        if self._pools is None:
            self._pools = {}

    async def close(self) -> None:
        pools, self._pools = self._pools, None
        for pool in (pools or {}).values():
            pool.close()

    async def __aenter__(self) -> Forwarder:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def _pool(self, upstream: _Upstream) -> H1Pool:
        pools = self._pools
        if pools is None:
            raise RuntimeError("Forwarder.start() has not been awaited")
        pool = pools.get(upstream.origin)
        if pool is None:
            scheme, host, port = upstream.origin
            pool = pools[upstream.origin] = H1Pool(
                host, port, self._ssl if scheme == "https" else None,
                keepalive_timeout=self._keepalive_timeout, max_idle=self._limit)
        return pool

    async def forward(self, request: web.Request, route: RouteSettings, body: bytes, *,
                      client_id: str | None, scope: str | None, request_id: str,
                      forwarded_proto: str, client_address: str,
                      budget: float | None = None, traceparent: str = "") -> web.Response:
        """Send ``body`` with ``request``'s method, query and cleaned headers to the route's
        upstreams; return the backend's answer or raise 502/504. ``budget`` (seconds) replaces the
        route's ``timeout_seconds`` (a fallback route waits less before it spools)."""
        method = request.method
        fields = request_fields(request.headers, method, len(body), route,
                                client_id=client_id, scope=scope, request_id=request_id,
                                forwarded_proto=forwarded_proto,
                                client_address=client_address, traceparent=traceparent)
        answer = await self.send(route, method, request.rel_url.raw_query_string, fields, body,
                                 budget=budget)
        return _response(request, answer, route.success_status)

    async def send(self, route: RouteSettings, method: str, raw_query: str, fields: bytes,
                   body: bytes, *, budget: float | None = None) -> UpstreamAnswer:
        """Send one request (its header block from ``request_fields``) to the route's
        upstreams, failing over on connect errors only; the backend's answer, whatever its
        status, or BadGatewayError / GatewayTimeoutError."""
        plan = self._plans.get(id(route))
        if plan is None or plan.route is not route:
            plan = self._plan(route)
        loop = asyncio.get_running_loop()
        seconds = route.timeout_seconds if budget is None else budget
        deadline = loop.time() + seconds
        last = len(plan.upstreams) - 1
        for index, upstream in enumerate(plan.upstreams):
            start_line = (f"{method} {upstream.request_target(raw_query)} HTTP/1.1\r\n"
                          f"Host: {upstream.host_header}\r\n").encode("ascii")
            try:
                answer = await self._pool(upstream).exchange(
                    b"".join((start_line, fields, b"\r\n", body)),
                    connect_timeout=plan.connect_timeout, deadline=deadline)
            except ConnectFailed as exc:
                # The connection never opened, so this backend never saw the request and
                # the next one may have it.
                reason = "connect_timeout" if isinstance(exc, ConnectTimedOut) else "connect"
                self.errors[reason] += 1
                log.warning("upstream unreachable reason_id=%s upstream=%r error=%r",
                            reason, upstream.name, str(exc))
                if index < last and loop.time() < deadline:
                    continue
                if isinstance(exc, ConnectTimedOut):
                    raise GatewayTimeoutError() from exc
                raise BadGatewayError() from exc
            except TimeoutError as exc:
                self.errors["timeout"] += 1
                log.warning("upstream timeout reason_id=timeout upstream=%r seconds=%r",
                            upstream.name, seconds)
                raise GatewayTimeoutError() from exc
            except UpstreamBroken as exc:
                # Reset, disconnect or an unparsable answer: the request may have arrived,
                # so it is not tried elsewhere.
                self.errors["protocol"] += 1
                log.warning("upstream failed reason_id=protocol upstream=%r error=%r",
                            upstream.name, str(exc))
                raise BadGatewayError() from exc
            return answer
        raise AssertionError("a route has at least one upstream")  # pragma: no cover

    def _plan(self, route: RouteSettings) -> _Plan:
        count = len(route.upstreams)
        # With several upstreams one unreachable host may not eat the whole budget.
        connect = route.timeout_seconds / count if count > 1 else route.timeout_seconds
        plan = _Plan(
            route=route,
            upstreams=tuple(_upstream(u) for u in route.upstreams),
            connect_timeout=connect,
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
    assert url.raw_host is not None and url.port is not None  # settings checked the URL
    target = url.raw_path + (f"?{url.raw_query_string}" if url.raw_query_string else "")
    return _Upstream(origin=(url.scheme, url.raw_host, url.port),
                     host_header=url.host_port_subcomponent or url.raw_host,
                     target=target or "/",
                     name=f"{url.scheme}://{url.host_port_subcomponent}")


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


def _response(request: web.Request, answer: UpstreamAnswer,
              success_status: int | None) -> web.Response:
    status = answer.status
    # IRIS counts only 200 as delivered; never turn a non-2xx into success.
    if success_status is not None and 200 <= status < 300:
        status = success_status
    drop = _RESPONSE_DROP
    content_type = ""
    encoded = False
    for name, value in answer.headers:
        lower = name.lower()
        if lower == "connection":
            drop = drop | connection_tokens(value)
        elif lower == "content-type":
            content_type = value.partition(";")[0].strip().lower()
        elif lower == "content-encoding":
            encoded = True
    # A list, not a CIMultiDict: web.Response copies whatever it is given into a new one.
    headers = [(k, v) for k, v in answer.headers if k.lower() not in drop]
    payload = answer.body
    response = web.Response(status=status, body=payload, headers=headers)
    if len(payload) > _GZIP_MIN_BYTES and not encoded and _compressible(content_type):
        # The representation now depends on Accept-Encoding, compressed or not.
        response.headers.add("Vary", "Accept-Encoding")
        if accepts_gzip(request.headers.get("Accept-Encoding")):
            response.enable_compression(web.ContentCoding.gzip)
    response[UPSTREAM_STATUS] = answer.status
    return response


def _compressible(content_type: str) -> bool:
    return (content_type.startswith("text/") or content_type.endswith(("/json", "+json"))
            or content_type.endswith(("/xml", "+xml")) or content_type == "application/javascript")
