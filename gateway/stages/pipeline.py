"""The protected routes: the stages of docs/architecture.md, in one listed order, ending in the
forward.

    1. https      (middleware, stages/https.py)     403 on plain HTTP
    2. route      (app.py dispatch, current runtime) 404, 405 + Allow
    3. authn      (stages/authn.py)                 401, 400, 403 insufficient_scope
    4. limits     (stages/limits.py)                403, 429
    5. headers    (stages/headers.py)               415, 413; body read under the bound
       signature  (stages/signature.py)             401 when the route asks for it
    6. payload    (stages/payload.py)               400 invalid_payload with a JSON path
    7. forward    (upstream.py)                     502, 504; the backend's answer
       or spool   (spool.py, ``delivery: spool``)   200 once stored; 503 when full

The first failure raises and the error middleware answers; nothing that fails reaches the
backend. Each route's handler is built once per configuration (``runtime.py``), with its
own slice of the configuration and that configuration's verifier and upstream pool.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import keys
from gateway.config import RouteSettings, Settings
from gateway.forward.upstream import Forwarder
from gateway.oauth.tokens import TokenVerifier
from gateway.observe.metrics import Metrics
from gateway.peer import client_address
from gateway.spool.writer import Spool
from gateway.stages.authn import authenticate
from gateway.stages.headers import check_content_headers, read_body
from gateway.stages.limits import ClientLimits
from gateway.stages.payload import validate_aam_segments, validate_json
from gateway.stages.signature import check_signature

__all__ = ["RouteEntry", "build_routes", "request_id"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Unique, not secret: a per-process random prefix and a counter cost a fraction of
# os.urandom's system call per request.
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def request_id(request: web.Request) -> str:
    """The caller's X-Request-Id when it is sane, else a new unique one."""
    given = request.headers.get("X-Request-Id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One configured path: a handler per method, and the Allow list for a 405."""

    handlers: dict[str, Handler]
    allowed: tuple[str, ...]


def _route_handler(route: RouteSettings, settings: Settings, verifier: TokenVerifier,
                   forwarder: Forwarder, limits: ClientLimits, metrics: Metrics,
                   spool: Spool | None) -> Handler:
    realm = settings.tokens.realm
    max_bytes = settings.server.max_body_bytes
    trusted = settings.server.trusted_proxies
    validate: Callable[[bytes], None] = {
        "aam-segments": validate_aam_segments, "none": validate_json,
    }[route.payload]
    signature = route.signature
    scope = route.scope
    media_type = route.content_type
    label = route.path
    clock = time.perf_counter
    # Chosen once per route, so the direct path pays one test of a local per request.
    accept = spool.accept if spool is not None and route.delivery == "spool" else None
    if route.delivery == "spool" and accept is None:
        raise ValueError(f"route {route.path!r} spools but the app has no spool")

    async def handle(request: web.Request) -> web.StreamResponse:
        trace = request[keys.TRACE]
        verified = authenticate(request, verifier, scope, realm)
        request[keys.VERIFIED_TOKEN] = verified
        trace.client_id = verified.client_id
        address = client_address(request, trusted)
        if limits.active:
            limits.check(verified.client_id, address)
        gzip = check_content_headers(request, media_type, max_bytes)
        raw, body = await read_body(request, max_bytes, gzip=gzip)
        if signature is not None:
            check_signature(request, raw, signature, realm)
        validate(body)
        if accept is not None:
            return await accept(
                request, route, body, client_id=verified.client_id,
                scope=verified.scope, request_id=trace.request_id,
                forwarded_proto="https", client_address=address,
                traceparent=trace.context.fields)
        started = clock()
        try:
            response = await forwarder.forward(
                request, route, body,
                client_id=verified.client_id,
                scope=verified.scope,
                request_id=trace.request_id,
                forwarded_proto="https",
                client_address=address,
                traceparent=trace.context.fields,
            )
        finally:
            metrics.observe_upstream(label, clock() - started)
        trace.upstream_status = response.get(keys.UPSTREAM_STATUS)
        return response

    return handle


def build_routes(settings: Settings, verifier: TokenVerifier, forwarder: Forwarder,
                 metrics: Metrics, spool: Spool | None = None) -> dict[str, RouteEntry]:
    """The route table of one configuration, keyed by path; ``delivery: spool`` routes
    store into ``spool``."""
    limits = ClientLimits(settings.clients)
    table: dict[str, RouteEntry] = {}
    for route in settings.routes:
        handler = _route_handler(route, settings, verifier, forwarder, limits, metrics, spool)
        table[route.path] = RouteEntry({method: handler for method in route.methods},
                                       tuple(sorted(route.methods)))
    return table
