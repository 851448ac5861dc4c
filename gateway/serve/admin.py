"""The admin listener (docs/operations.md): ``/livez``, ``/readyz``, ``/metrics`` and the
status page; never the public port.

``/livez`` (and its older name ``/healthz``) says the process serves: it reads nothing.
``/readyz`` is ``readiness.py``'s verdict, checked anew at every call but answered within
``status_routes.ANSWER_SECONDS`` (a check that takes longer, an upstream that does not
answer a connect, goes on in the background and the last verdict is given); the spool's
part of it is read from state the backend refreshes in the background, never from Redis
at the time of the call. ``/metrics`` is the Prometheus text of ``metrics.py``: this process's
counts, or with workers the sum of all of theirs, the spool's gauges read from its file, and
the gauges of the status page's health check (``gateway_ready``, the upstreams, the
certificate's expiry), at most ``status_routes.HEALTH_SECONDS`` old. The status page
(``/``, ``/status.json`` and its dead-letter actions) is ``status_routes.py``. Every path
answers only a ``Host`` that names the listener, through guarded connections
(``admin_guard.py``).
"""

from __future__ import annotations

import json

from aiohttp import web

from gateway.errors import error_middleware
from gateway.observe.metrics import render as render_metrics
from gateway.serve.admin_guard import ADMIN_LIMITS, admin_runner, host_guard
from gateway.serve.readiness import AdminProbe, readiness
from gateway.serve.status_routes import add_status_routes, health_snapshot
from gateway.spool.status import spool_snapshot

__all__ = ["ADMIN_LIMITS", "AdminProbe", "admin_runner", "create_admin_app", "readiness"]

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def create_admin_app(probe: AdminProbe) -> web.Application:
    app = web.Application(middlewares=[error_middleware,
                                       host_guard(probe.current()[0].server.admin)])
    page = add_status_routes(app, probe)

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        health = await page.fresh()  # a fresh check serves the page and /metrics too
        ready, body = health.ready, health.body
        return web.Response(status=200 if ready else 503, content_type="application/json",
                            text=json.dumps(body, separators=(",", ":")),
                            headers={"Cache-Control": "no-store"})

    async def metrics(_: web.Request) -> web.Response:
        settings = probe.current()[0]
        health = await page.checked()
        # The spool's gauges are read from its file: one per machine, never summed.
        body = render_metrics([*probe.snapshots(), *await spool_snapshot(settings),
                               health_snapshot(health)])
        return web.Response(body=body, headers={"Content-Type": _PROMETHEUS_TEXT})

    app.router.add_get("/livez", livez)
    app.router.add_get("/healthz", livez)  # the name the first images and manifests used
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
