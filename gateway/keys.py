"""Every ``web.AppKey`` and ``web.RequestKey`` of the gateway, in one place."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.oauth.tokens import VerifiedToken
    from gateway.observe.accesslog import Trace
    from gateway.observe.metrics import Metrics
    from gateway.serve.runtime import RuntimeSlot
    from gateway.spool.accept import Spool
    from gateway.state.mirror import SharedState

__all__ = [
    "CONTINUE",
    "METRICS",
    "RUNTIME",
    "SETTINGS",
    "SHARED_STATE",
    "SPOOL",
    "TLS_CONTEXT",
    "TRACE",
    "UPSTREAM_STATUS",
    "VERIFIED_TOKEN",
]

# The settings the app was started with (listeners, state: what a reload cannot change).
SETTINGS: web.AppKey[Settings] = web.AppKey("SETTINGS")
# Everything a reload replaces (docs/architecture.md): read ``app[RUNTIME].current`` per request.
RUNTIME: web.AppKey[RuntimeSlot] = web.AppKey("RUNTIME")
METRICS: web.AppKey[Metrics] = web.AppKey("METRICS")
SHARED_STATE: web.AppKey[SharedState] = web.AppKey("SHARED_STATE")
# The store-and-forward queue (docs/operations.md): one per process, kept across reloads.
SPOOL: web.AppKey[Spool] = web.AppKey("SPOOL")
# The public listener's live context: a reload loads the renewed chain into it.
TLS_CONTEXT: web.AppKey[ssl.SSLContext] = web.AppKey("TLS_CONTEXT")

# What the access log reports of a request, filled in as it travels (accesslog.Trace).
TRACE: web.RequestKey[Trace] = web.RequestKey("TRACE")
VERIFIED_TOKEN: web.RequestKey[VerifiedToken] = web.RequestKey("VERIFIED_TOKEN")
# Present while a request's "Expect: 100-continue" is unanswered: whoever reads the body
# first pops and awaits it, so the interim answer follows the checks that need no body.
CONTINUE: web.RequestKey[Callable[[], Awaitable[None]]] = web.RequestKey("CONTINUE")
# The backend's own status, before success_status mapping (the access log's upstream_status).
UPSTREAM_STATUS: web.ResponseKey[int] = web.ResponseKey("UPSTREAM_STATUS")
