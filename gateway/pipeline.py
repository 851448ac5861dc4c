"""The protected routes: SPEC §5.2's stages, in one listed order, ending in the forward.

    1. https      (middleware, stages/https.py)     403 on plain HTTP
    2. route      (the router)                      404, 405 + Allow
    3. authn      (stages/authn.py)                 401, 400, 403 insufficient_scope
    4. limits     (stages/limits.py)                403, 429
    5. headers    (stages/headers.py)               415, 413; body read under the bound
       signature  (stages/signature.py)             401 when the route asks for it
    6. payload    (stages/payload.py)               400 invalid_payload with a JSON path
    7. forward    (upstream.py)                     502, 504; the backend's answer

The first failure raises and the error middleware answers; nothing that fails reaches the
backend. Each route's handler is built once, with its own slice of the configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import keys
from gateway.settings import RouteSettings, Settings
from gateway.stages.authn import authenticate
from gateway.stages.headers import check_content_headers, read_body
from gateway.stages.https import client_address
from gateway.stages.limits import ClientLimits
from gateway.stages.payload import validate_aam_segments, validate_json
from gateway.stages.signature import check_signature

__all__ = ["add_protected_routes", "request_id"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(request: web.Request) -> str:
    """The caller's X-Request-Id when it is sane, else a new random one."""
    given = request.headers.get("X-Request-Id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(12).hex()


def _route_handler(app: web.Application, route: RouteSettings, settings: Settings,
                   limits: ClientLimits) -> Handler:
    realm = settings.tokens.realm
    max_bytes = settings.server.max_body_bytes
    trusted = settings.server.trusted_proxies
    validate: Callable[[bytes], None] | None = {
        "aam-segments": validate_aam_segments, "none": validate_json,
    }[route.payload]
    signature = route.signature
    scope = route.scope
    media_type = route.content_type

    async def handle(request: web.Request) -> web.StreamResponse:
        verified = authenticate(request, app[keys.TOKEN_VERIFIER], scope, realm)
        address = client_address(request, trusted)
        if limits.active:
            limits.check(verified.client_id, address)
        gzip = check_content_headers(request, media_type, max_bytes)
        raw, body = await read_body(request, max_bytes, gzip=gzip)
        if signature is not None:
            check_signature(request, raw, signature, realm)
        if validate is not None:
            validate(body)
        request[keys.VERIFIED_TOKEN] = verified
        return await app[keys.FORWARDER].forward(
            request, route, body,
            client_id=verified.client_id,
            scope=" ".join(sorted(verified.scopes)),
            request_id=request_id(request),
            forwarded_proto="https",
            client_address=address,
        )

    return handle


def add_protected_routes(app: web.Application, settings: Settings) -> None:
    limits = ClientLimits(settings.clients)
    for route in settings.routes:
        handler = _route_handler(app, route, settings, limits)
        for method in route.methods:
            app.router.add_route(method, route.path, handler)
