"""Wiring of the OAuth part into the app: the token endpoint (RFC 6749 §4.4), revocation
(RFC 7009), introspection (RFC 7662) and the discovery documents (RFC 8414, RFC 7517).

Every handler reads the objects it needs from the current runtime (``app[RUNTIME].current``),
so a reload's new keys and clients apply to the next request.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config import Settings
from gateway.keys import METRICS, RUNTIME, SHARED_STATE
from gateway.oauth.discovery import (
    JWKS_PATH,
    METADATA_PATH,
    REVOKE_PATH,
    RFC7662_PATH,
    TOKEN_PATH,
)
from gateway.oauth.revocation import introspection_endpoint, revocation_endpoint
from gateway.oauth.token_endpoint import token_endpoint
from gateway.observe.metrics import Metrics
from gateway.serve.expect import defer_continue
from gateway.serve.runtime import Runtime, RuntimeSlot
from gateway.state.memory import MemoryState
from gateway.state.mirror import SharedState

__all__ = ["OAUTH_PATHS", "setup_oauth"]

OAUTH_PATHS = (TOKEN_PATH, REVOKE_PATH, RFC7662_PATH, JWKS_PATH, METADATA_PATH)


async def jwks(request: web.Request) -> web.Response:
    return await request.app[RUNTIME].current.discovery.jwks(request)


async def metadata(request: web.Request) -> web.Response:
    return await request.app[RUNTIME].current.discovery.metadata(request)


def setup_oauth(app: web.Application, settings: Settings) -> None:
    """Register the OAuth routes on ``app``. An app without a runtime (unit tests) gets one
    built from ``settings`` with an in-memory shared state; raises ``ConfigError`` if a key
    file cannot be loaded."""
    if RUNTIME not in app:
        metrics, shared = Metrics(), SharedState(MemoryState())
        app[METRICS] = metrics
        app[SHARED_STATE] = shared
        app[RUNTIME] = RuntimeSlot(Runtime(settings, shared, metrics), metrics, OAUTH_PATHS)
    # Only POST is registered: other methods get 405 with Allow: POST (app.py answers it
    # from the router's own table).
    # 100 Continue only once the credential has passed (serve/expect.py).
    app.router.add_post(TOKEN_PATH, token_endpoint, expect_handler=defer_continue)
    app.router.add_post(REVOKE_PATH, revocation_endpoint, expect_handler=defer_continue)
    app.router.add_post(RFC7662_PATH, introspection_endpoint, expect_handler=defer_continue)
    app.router.add_get(JWKS_PATH, jwks, expect_handler=defer_continue)
    app.router.add_get(METADATA_PATH, metadata, expect_handler=defer_continue)
