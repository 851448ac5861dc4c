"""Every ``web.AppKey`` and ``web.RequestKey`` of the gateway, in one place."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.metrics import Metrics
    from gateway.oauth.tokens import VerifiedToken
    from gateway.runtime import RuntimeSlot
    from gateway.settings import Settings
    from gateway.shared import SharedState

__all__ = [
    "CLIENT_ID",
    "METRICS",
    "REQUEST_ID",
    "RUNTIME",
    "SETTINGS",
    "SHARED_STATE",
    "STARTED",
    "TLS_CONTEXT",
    "UPSTREAM_STATUS",
    "VERIFIED_TOKEN",
]

# The settings the app was started with (listeners, state: what a reload cannot change).
SETTINGS: web.AppKey[Settings] = web.AppKey("SETTINGS")
# Everything a reload replaces (SPEC §6): read ``app[RUNTIME].current`` per request.
RUNTIME: web.AppKey[RuntimeSlot] = web.AppKey("RUNTIME")
METRICS: web.AppKey[Metrics] = web.AppKey("METRICS")
SHARED_STATE: web.AppKey[SharedState] = web.AppKey("SHARED_STATE")
# The public listener's live context: a reload loads the renewed chain into it.
TLS_CONTEXT: web.AppKey[ssl.SSLContext] = web.AppKey("TLS_CONTEXT")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("REQUEST_ID")
# time.perf_counter() when the request reached the app: the loop's clock (uvloop) only
# counts whole milliseconds.
STARTED: web.RequestKey[float] = web.RequestKey("STARTED")
CLIENT_ID: web.RequestKey[str] = web.RequestKey("CLIENT_ID")
UPSTREAM_STATUS: web.RequestKey[int] = web.RequestKey("UPSTREAM_STATUS")
VERIFIED_TOKEN: web.RequestKey[VerifiedToken] = web.RequestKey("VERIFIED_TOKEN")
