"""Connection guards for the public listener: what aiohttp's ``RequestHandler`` leaves open.

aiohttp bounds a connection only by its keep-alive timer and answers parse errors itself,
logging the offending bytes. ``GuardedAppRunner`` serves the application through a
``RequestHandler`` subclass that adds, per connection (docs/security.md, "Limits"):

* a **header timeout** (slowloris): the head within ``header_seconds``, else ``408``;
* a **body timeout**: the whole body within ``body_seconds`` of the head, else ``408``;
* **connection caps** per process and per source address (``connections.py``; handshakes
  count from ``accept`` on, ``acceptor.py``): the oldest idle connection makes room, or
  ``503``;
* **parse errors** as the JSON error body (``400``, ``414``, ``431``), logged without bytes;
* **HTTP/1.0 and 1.1 only**: any other version is ``505``, and the connection closes;
* a fixed ``Server: gateway``, and **HSTS** (RFC 6797) on every answer over TLS only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway import keys
from gateway.errors import (
    GatewayError,
    GatewayTimeoutError,
    HttpVersionNotSupportedError,
    InternalError,
    InvalidRequestError,
    RequestHeaderFieldsTooLargeError,
    RequestTimeoutError,
    ServiceUnavailableError,
    UriTooLongError,
    error_body,
    render,
)
from gateway.serve.acceptor import GuardedTCPSite
from gateway.serve.connections import (
    DEFAULT_LIMITS,
    Connection,
    ConnectionLimits,
    Registry,
)
from gateway.serve.expect import continue_withheld
from gateway.serve.framing import misframed, refuse_framing
from gateway.serve.reads import BufferedReads
from gateway.stages.https import HSTS

__all__ = ["DEFAULT_LIMITS", "SERVER_TOKEN", "ConnectionLimits", "GuardedAppRunner",
           "GuardedTCPSite"]

log = logging.getLogger("gateway.guards")

# RFC 9110 §10.2.4: "An origin server MAY generate a Server header field"; a product name
# without a version tells a scanner nothing it can match against a list of flaws.
SERVER_TOKEN = "gateway"
_HTTP_1 = (HttpVersion11, HttpVersion10)


def _raw_answer(error: GatewayError) -> bytes:
    """A complete HTTP/1.1 answer for moments without a request object (refusals at accept,
    a head that never completed); the connection closes right after it."""
    body = error_body(error)
    return (f"HTTP/1.1 {error.status_code} {error.error}\r\n"
            "Content-Type: application/json\r\nCache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class _GuardedHandler(RequestHandler):
    """aiohttp's request handler with header and body deadlines and JSON parse errors."""

    def __init__(self, manager: web.Server, *, registry: Registry, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._registry = registry
        self.pending: Connection | None = None  # its handshake's slot (acceptor.py)
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None
        self._tls = False

    # -- the connection --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if self.pending is not None:  # the handshake's slot becomes this connection's
            self._registry.release(self.pending)
            self.pending = None
        if not self._registry.admit(self, address):
            log.warning("connection refused: too many connections",
                        extra={"reason_id": "max_connections"})
            transport.write(_raw_answer(ServiceUnavailableError()))  # type: ignore[attr-defined]
            transport.close()
            return
        self._admitted = True
        self._tls = transport.get_extra_info("sslcontext") is not None
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        self._registry.release(self)
        if not self._admitted:
            self._manager = None  # nothing was started for a refused connection
            return
        super().connection_lost(exc)

    def is_idle(self) -> bool:
        """Between requests with nothing received: safe to close for someone else."""
        return (self._admitted and not self._request_in_progress and not self._messages
                and self._head_timer is None and self._body is None)

    # -- bytes in --------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._force_close or self._close or not data:
            super().data_received(data)
            return
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:
            # One or more heads completed: the newest one's body (if any) is now timed.
            self._cancel(head=True)
            _, payload = self._messages[-1] if self._messages else (None, None)
            if isinstance(payload, StreamReader) and not payload.is_eof():
                self._start_body(payload)
        elif self._body is None and self._head_timer is None:
            # Bytes with no head completed and no body in progress: a head has begun.
            self._head_timer = self._loop.call_later(self._registry.limits.header_seconds,
                                                     self._head_expired)
        if self._body is not None and self._body.is_eof():
            self._cancel(body=True)

    def _start_body(self, payload: StreamReader) -> None:
        self._cancel(body=True)
        self._body = payload
        self._body_timer = self._loop.call_later(self._registry.limits.body_seconds,
                                                 self._body_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._request_in_progress or self._messages:
            # A pipelined head behind a running request: aiohttp's keep-alive timer takes
            # over once that request is answered.
            return
        log.info("request head timed out", extra={"reason_id": "header_timeout"})
        if self.transport is not None:
            self.transport.write(_raw_answer(RequestTimeoutError()))
        self.force_close()

    def _body_expired(self) -> None:
        self._body_timer = None
        payload, self._body = self._body, None
        if payload is None or payload.is_eof() or not self._request_in_progress:
            # Answered already: aiohttp's own lingering read (10 s at most) drains the rest.
            return
        log.info("request body timed out", extra={"reason_id": "body_timeout"})
        # The handler's pending or next read raises this, the error middleware answers 408;
        # no lingering read of the rest, and the connection closes after the answer.
        payload.set_exception(RequestTimeoutError(headers={"Connection": "close"}))
        self._lingering_time = 0.0
        self.close()

    def _cancel(self, *, head: bool = False, body: bool = False) -> None:
        if head and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if body:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            self._body = None

    def _cancel_timers(self) -> None:
        self._cancel(head=True, body=True)

    # -- answers aiohttp writes itself -----------------------------------------------------
    def _handle_request(
            self, request: BaseRequest, start_time: float | None,
            request_handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        # A plain function handing back aiohttp's coroutine: no frame of its own per request.
        if request.version not in _HTTP_1:
            # aiohttp's parser takes HTTP/0.9 and HTTP/2.0 request lines and would answer
            # in kind. Answered as HTTP/1.1 (the answer's status line is the request's
            # version, cached by aiohttp: both are set), then closed.
            log.info("unsupported HTTP version", extra={"reason_id": "bad_http_version"})
            request._version = HttpVersion11
            request._cache.pop("version", None)
            request_handler = _refuse_version
        elif request_handler is self._request_handler:  # not aiohttp's parse-error answer
            reason = misframed(request)
            if reason is not None:
                log.info("refused framing", extra={"reason_id": "bad_framing",
                                                   "reason": reason})
                request_handler = refuse_framing
        return super()._handle_request(request, start_time, request_handler)

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            # Raised before the middlewares run (the router's Expect handler: 417), so the
            # error renderer never saw it; same JSON, same status.
            status = resp.status
            resp = render(InvalidRequestError())
            resp.set_status(status)
        if not resp.prepared:
            headers = resp.headers
            headers[hdrs.SERVER] = SERVER_TOKEN
            if self._tls:
                headers[hdrs.STRICT_TRANSPORT_SECURITY] = HSTS
            if continue_withheld(request):
                # RFC 9110 §10.1.1: answered without asking for the body, which the client
                # may send or not; the connection cannot carry another request, and is
                # closed at once rather than after aiohttp's lingering read of a body.
                resp.force_close()
                self._lingering_time = 0.0
        return await super().finish_response(request, resp, start_time)

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        error: GatewayError
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else None
            error = (UriTooLongError() if limit == self.max_line_size
                     else RequestHeaderFieldsTooLargeError())
        elif exc is not None and "Too many headers" in str(exc):
            error = RequestHeaderFieldsTooLargeError()
        elif status == 504:
            error = GatewayTimeoutError()
        elif status >= 500:
            error = InternalError()
        else:
            error = InvalidRequestError()
        # SECURITY: the exception's text quotes the bytes received, which may be a
        # credential; only its type is logged, and no traceback.
        log.info("unparsable request", extra={"reason_id": "bad_http",
                                              "error_type": type(exc).__name__,
                                              "status": error.status_code})
        response = render(error)
        response.headers["Connection"] = "close"
        response.force_close()
        return response


async def _refuse_version(request: BaseRequest) -> web.StreamResponse:
    response = render(HttpVersionNotSupportedError())
    response.force_close()
    return response


class _GuardedServer(web.Server):
    """aiohttp's low-level server, making guarded handlers."""

    def __init__(self, *args: Any, registry: Registry, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.registry = registry  # also the acceptor's, for handshakes (acceptor.py)

    def __call__(self) -> BufferedReads:  # type: ignore[override]  # reads.py: one buffer
        return BufferedReads(_GuardedHandler(self, loop=self._loop, registry=self.registry,
                                             **self._kwargs))


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are guarded by ``limits`` (read when the runner
    is made, so tests can shorten ``DEFAULT_LIMITS``), with the per-address cap and the
    trusted proxies of the app's settings."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits | None = None,
                 **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        limits = limits if limits is not None else DEFAULT_LIMITS
        settings = app.get(keys.SETTINGS)
        self._trusted = settings.server.trusted_proxies if settings is not None else ()
        if settings is not None:
            limits = replace(limits, max_connections_per_address=(
                settings.server.max_connections_per_address))
        self._limits = limits

    @property
    def limits(self) -> ConnectionLimits:
        return self._limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _GuardedServer(
            plain.request_handler, request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop,
            registry=Registry(self._limits, self._trusted), **plain._kwargs)

