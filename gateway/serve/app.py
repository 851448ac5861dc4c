"""``create_app(settings)``: the public application.

One middleware, ``front``: request id, in-flight count, HTTPS required (stage 1,
``stages/https.py``), the one renderer of docs/architecture.md, refusal counts; one frame
per request, not one per concern. HSTS is set where every answer passes, the guarded
connection handler (``guards.py``). Routes: the OAuth endpoints and discovery (``oauth/``)
in aiohttp's router, then the protected routes of the *current* runtime (``runtime.py``),
so a reload can add, change or remove routes: the paths configured at start are plain
resources of the router (found by one dictionary lookup), everything else falls to one
catch-all, and both dispatch through the runtime of the moment; it answers 404 and 405 +
``Allow`` exactly as the router would.

The app owns the process's shared-state mirror (``state/mirror.py``, refreshed in the
background), its metrics and the runtime slot; ``reload.py`` swaps the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway import keys
from gateway.config import Settings
from gateway.config.yamlpath import Network
from gateway.errors import (
    ClientClosedRequestError,
    ForbiddenError,
    GatewayError,
    InsufficientScopeError,
    InvalidClientError,
    InvalidPayloadError,
    InvalidRequestError,
    InvalidTokenError,
    MethodNotAllowedError,
    MissingTokenError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_middleware,
    render,
    respond_to,
)
from gateway.observe.accesslog import Trace
from gateway.observe.metrics import Metrics
from gateway.observe.trace import request_id, trace_context
from gateway.serve.expect import defer_continue
from gateway.serve.malloc import tune_allocator
from gateway.serve.oauth_routes import OAUTH_PATHS, setup_oauth
from gateway.serve.runtime import Runtime, RuntimeSlot
from gateway.serve.tls import server_context
from gateway.spool.accept import Spool
from gateway.spool.base import SpoolBackend
from gateway.spool.factory import backend_for
from gateway.stages.https import check_https
from gateway.stages.signature import SignatureError
from gateway.state.base import StateError
from gateway.state.factory import open_state
from gateway.state.mirror import SharedState

__all__ = ["create_app", "error_middleware"]

log = logging.getLogger("gateway")

# Paths the router takes literally and matches as the catch-all would (no pattern braces,
# nothing its URL normalisation could rewrite).
_PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+/?")
_AUTH_ERRORS = (InvalidClientError, InvalidTokenError, MissingTokenError,
                InsufficientScopeError, ForbiddenError)
_PAYLOAD_ERRORS = (InvalidPayloadError, PayloadTooLargeError, UnsupportedMediaTypeError)


def _auth_reason(error: GatewayError) -> str | None:
    """The ``reason`` label of an authentication refusal, or None for other errors."""
    if isinstance(error, MissingTokenError):
        return "missing_token"
    if isinstance(error, SignatureError):
        return "invalid_signature"
    if isinstance(error, _AUTH_ERRORS):
        return error.error
    # A malformed bearer token: invalid_request with a Bearer challenge (RFC 6750 §3.1).
    if isinstance(error, InvalidRequestError) and "WWW-Authenticate" in error.extra_headers:
        return "invalid_request"
    return None


def front_middleware(metrics: Metrics, labels: dict[str, str],
                     trusted_proxies: tuple[Network, ...] = ()) -> Middleware:
    """Request id and in-flight gauge for every request, then HTTPS required before any
    handler reads a header; every failure rendered once and counted (authentication
    failures by reason, payload rejections by route)."""

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        request[keys.TRACE] = Trace(perf_counter(), request_id(headers), trace_context(headers))
        metrics.inflight += 1
        try:
            check_https(request, trusted_proxies)
            return await handler(request)
        except GatewayError as error:
            reason = _auth_reason(error)
            if reason is not None:
                metrics.count("gateway_auth_failures_total", reason)
            elif isinstance(error, _PAYLOAD_ERRORS):
                metrics.count("gateway_payload_rejections_total",
                              labels.get(request.path, "unmatched"), error.error)
            return respond_to(request, error)
        except ConnectionResetError as exc:
            transport = request.transport
            if transport is None or transport.is_closing():
                # The caller went away mid-body (aiohttp's read raises this once the
                # connection is lost): 499 for the access log and metrics, not a 500 that
                # would feed GatewayHigh5xxRatio; info, as nothing here failed.
                log.info("client closed the request", extra={
                    "reason_id": "client_closed_request", "path": request.path,
                    "request_id": request[keys.TRACE].request_id})
                return render(ClientClosedRequestError())
            return respond_to(request, exc)
        except Exception as exc:  # the one catch-all (errors/render.py)
            return respond_to(request, exc)
        finally:
            metrics.inflight -= 1

    return front


def _dispatcher(slot: RuntimeSlot, fixed: dict[str, tuple[str, ...]]) -> Handler:
    """The protected routes of the current runtime, found by path then method."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        runtime = slot.current
        path = request.rel_url.path_safe  # what aiohttp's router matches on
        entry = runtime.routes.get(path)
        if entry is None:
            # The catch-all also receives wrong methods on the router's own paths.
            allowed = fixed.get(path)
            if allowed is not None:
                raise MethodNotAllowedError(allowed)
            raise NotFoundError()
        handler = entry.handlers.get(request.method)
        if handler is None:
            raise MethodNotAllowedError(entry.allowed)
        runtime.active += 1  # the old runtime's pool stays open until this reaches 0
        try:
            return await handler(request)
        finally:
            runtime.active -= 1

    return dispatch


def create_app(settings: Settings) -> web.Application:
    tune_allocator()  # before the helper threads start (serve/malloc.py)
    metrics = Metrics()
    backend = open_state(settings.state)
    shared = SharedState(backend, metrics)
    spool_backend = backend_for(settings.spool)
    spool = spool_backend.open_spool()  # its file is opened on first use (a spool route)
    metrics.attach(spool)
    slot = RuntimeSlot(Runtime(settings, shared, metrics, spool), metrics, OAUTH_PATHS)
    app = web.Application(
        middlewares=[front_middleware(metrics, slot.labels, settings.server.trusted_proxies)],
        client_max_size=settings.server.max_body_bytes,
        # auto_decompress off: gzip request bodies are inflated by the header stage under
        # the body bound (a gzip bomb must cost at most max_body_bytes), and the signature
        # stage needs the bytes as sent.
        handler_args={"max_field_size": 16384, "max_headers": 64, "auto_decompress": False,
                      "keepalive_timeout": 75.0},
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app[keys.SHARED_STATE] = shared
    app[keys.RUNTIME] = slot
    app[keys.SPOOL] = spool
    app[keys.TLS_CONTEXT] = server_context(settings.server.tls)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await slot.start()
        try:
            await shared.refresh()
        except StateError as exc:  # the refresh task keeps trying and logs the outage
            log.error("shared state unavailable at start: %s", exc,
                      extra={"reason_id": "state_unavailable"})
        refresher = asyncio.get_running_loop().create_task(shared.run())
        yield
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await slot.close()
        await backend.close()

    app.cleanup_ctx.append(lifecycle)
    # The spool's deliverer stops before the pools close.
    app.cleanup_ctx.append(spool_lifecycle(spool_backend, spool, slot))
    setup_oauth(app, settings)
    fixed = {resource.canonical: tuple(sorted({route.method for route in resource}))
             for resource in app.router.resources()}
    dispatch = _dispatcher(slot, fixed)
    for path in slot.current.routes:
        if _PLAIN_PATH.fullmatch(path) and path not in fixed:
            # A dictionary hit in the router instead of its walk up the path to the
            # catch-all's pattern; a reload that drops the path gets 404 from dispatch.
            app.router.add_route("*", path, dispatch, expect_handler=defer_continue)
    app.router.add_route("*", "/{tail:.*}", dispatch, expect_handler=defer_continue)
    return app

def spool_lifecycle(backend: SpoolBackend, spool: Spool, slot: RuntimeSlot
                    ) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's ``cleanup_ctx`` entry: the backend's deliverer runs while the app does;
    at shutdown, after the listeners drained, it stops and the spool's last writes are
    committed."""

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        delivery = backend.open_deliverer(spool, slot)
        await delivery.start()
        yield
        await delivery.stop()
        await spool.close()

    return lifecycle
