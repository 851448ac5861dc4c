"""The protected routes: the stages in their one listed order, ending in the delivery
(the same numbers as docs/architecture.md, "The pipeline").

    1. https      stages/https.py, in the front middleware   403 invalid_request
    2. route      serve/app.py, the current runtime's table  404, 405 + Allow
    3. authn      stages/authn.py (``auth: bearer``)         401, 400, 403 insufficient_scope
    4. limits     stages/limits.py (when a client has one)   403, 429 + Retry-After
    5. headers    stages/headers.py, then the body read      415, 413, 400 (corrupt gzip)
    6. signature  stages/signature.py (when configured)      401 invalid_token
    7. payload    stages/payload/                            400 invalid_payload + JSON path;
                                                             ``payload_mode: report`` passes
    8. delivery   forward/upstream.py (``direct``)           502, 504, the backend's answer
                  spool/accept.py (``spool``)                200 once stored; 503 when full
                  stages/fallback.py (``fallback``)          the backend's answer, or stored

The first failure raises and the front middleware (serve/app.py) renders it; nothing that
fails reaches the backend. Each route's handler is built once per configuration
(``serve/runtime.py``), with its own slice of the configuration and that configuration's
verifier and upstream pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import keys
from gateway.config import RouteSettings, Settings
from gateway.forward.upstream import Forwarder
from gateway.oauth.tokens import TokenVerifier
from gateway.observe.metrics import Metrics
from gateway.peer import client_address
from gateway.spool.accept import Spool
from gateway.stages.authn import check_bearer
from gateway.stages.fallback import Fallback
from gateway.stages.headers import check_content_headers, read_body
from gateway.stages.limits import ClientLimits
from gateway.stages.payload import LARGE_BODY_BYTES, PayloadViolation, payload_check
from gateway.stages.signature import SignatureCheck

__all__ = ["RouteEntry", "build_routes"]

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One configured path: a handler per method, and the Allow list for a 405."""

    handlers: dict[str, Handler]
    allowed: tuple[str, ...]


Deliver = Callable[..., Awaitable[web.StreamResponse]]


def _delivery(route: RouteSettings, forwarder: Forwarder, metrics: Metrics,
              spool: Spool | None) -> Deliver:
    """The last stage of ``route``: forward, spool, or fallback (forward, else spool)."""
    if route.delivery != "direct":
        if spool is None:
            raise ValueError(f"route {route.path!r} spools but the app has no spool")
        if route.delivery == "fallback":
            return Fallback(route, forwarder, spool, metrics).deliver
        accept = spool.accept

        async def store(request: web.Request, body: bytes, *, client_id: str | None,
                        scope: str | None, request_id: str, client_address: str
                        ) -> web.StreamResponse:
            return await accept(request, route, body, client_id=client_id, scope=scope,
                                request_id=request_id, forwarded_proto="https",
                                client_address=client_address,
                                traceparent=request[keys.TRACE].context.fields)

        return store
    label = route.path
    clock = time.perf_counter

    async def forward(request: web.Request, body: bytes, *, client_id: str | None,
                      scope: str | None, request_id: str, client_address: str
                      ) -> web.StreamResponse:
        started = clock()
        try:
            response = await forwarder.forward(
                request, route, body, client_id=client_id, scope=scope,
                request_id=request_id, forwarded_proto="https", client_address=client_address,
                traceparent=request[keys.TRACE].context.fields)
        finally:
            metrics.observe_upstream(label, clock() - started)
        request[keys.TRACE].upstream_status = response.get(keys.UPSTREAM_STATUS)
        return response

    return forward


def _route_handler(route: RouteSettings, settings: Settings, verifier: TokenVerifier,
                   forwarder: Forwarder, limits: ClientLimits, metrics: Metrics,
                   spool: Spool | None) -> Handler:
    realm = settings.tokens.realm
    # The route's own bound, else the server's: resolved here, once per configuration, so a
    # request pays nothing for it (AEP's multi-MB batches beside IRIS's small pushes).
    max_bytes = route.body_limit(settings.server)
    trusted = settings.server.trusted_proxies
    payload = payload_check(route)
    check, check_large = payload.check, payload.check_large
    report = route.payload_mode == "report"
    signature = SignatureCheck(route.signature, realm) if route.signature is not None else None
    bearer = route.auth == "bearer"
    scope = route.scope
    media_type = route.content_type
    label = route.path
    deliver = _delivery(route, forwarder, metrics, spool)

    async def handle(request: web.Request) -> web.StreamResponse:
        trace = request[keys.TRACE]
        client_id: str | None = None
        scopes: str | None = None
        if bearer:
            verified = check_bearer(request, verifier, scope, realm)
            request[keys.VERIFIED_TOKEN] = verified
            trace.client_id = client_id = verified.client_id
            scopes = verified.scope
        address = client_address(request, trusted)
        if client_id is not None and limits.active:
            limits.check(client_id, address)
        gzip = check_content_headers(request, media_type, max_bytes)
        raw, body = await read_body(request, max_bytes, gzip=gzip)
        if signature is not None:
            signature.check(request, raw)
        try:
            if len(body) <= LARGE_BODY_BYTES:
                check(body)
            else:
                await check_large(body)
        except PayloadViolation as violation:
            metrics.count("gateway_payload_violations_total", label, violation.reason)
            if not report:
                raise
            # The path and the rule only: a description never holds a value of the body.
            log.warning("payload violation forwarded reason_id=payload_violation route=%r "
                        "path=%r reason=%r", label, violation.path, violation.reason,
                        extra={"reason_id": "payload_violation"})
        return await deliver(request, body, client_id=client_id, scope=scopes,
                             request_id=trace.request_id, client_address=address)

    return handle


def build_routes(settings: Settings, verifier: TokenVerifier, forwarder: Forwarder,
                 metrics: Metrics, spool: Spool | None = None) -> dict[str, RouteEntry]:
    """The route table of one configuration, keyed by path; ``delivery: spool`` and
    ``fallback`` routes store into ``spool``."""
    limits = ClientLimits(settings.clients)
    table: dict[str, RouteEntry] = {}
    for route in settings.routes:
        handler = _route_handler(route, settings, verifier, forwarder, limits, metrics, spool)
        table[route.path] = RouteEntry({method: handler for method in route.methods},
                                       tuple(sorted(route.methods)))
    return table
