"""The admin listener (SPEC §5.5): ``/healthz``, ``/readyz`` and ``/metrics``; never the
public port.

``/healthz`` says the process serves. ``/readyz`` is 200 only when the configuration is
loaded, the signing key signs and verifies, every upstream accepts a TCP connection
(``upstream.check_reachable``) and, under a supervisor, every worker runs; otherwise 503
with each reason. ``/metrics`` is the Prometheus text of ``metrics.py``: this process's
counts, or with workers the sum of all of theirs.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Protocol

from aiohttp import web

from gateway.errors import error_middleware
from gateway.metrics import Snapshot
from gateway.metrics import render as render_metrics
from gateway.oauth.keys import KeySet
from gateway.settings import Settings
from gateway.upstream import check_reachable

__all__ = ["AdminProbe", "create_admin_app", "readiness"]

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class AdminProbe(Protocol):
    """What the admin listener asks of the process serving it."""

    def current(self) -> tuple[Settings, KeySet]:
        """The running configuration and its keys."""

    def snapshots(self) -> list[Snapshot]:
        """Metric snapshots to sum (one per process)."""

    def problems(self) -> list[str]:
        """Reasons not to be ready besides configuration, keys and upstreams."""


def _keys_usable(keyset: KeySet) -> str | None:
    token = keyset.sign({"probe": True}, {"typ": "probe"})
    signing_input, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    key = keyset.verification_keys[keyset.signing_kid]
    if not keyset.algorithm_object.verify(signing_input.encode("ascii"), key, raw):
        return f"signing key {keyset.signing_kid!r} does not verify its own signature"
    return None


async def readiness(probe: AdminProbe) -> tuple[bool, dict[str, object]]:
    settings, keyset = probe.current()
    problems: list[str] = []
    try:
        reason = _keys_usable(keyset)
    except (ValueError, TypeError) as exc:
        reason = f"signing failed: {exc.__class__.__name__}"
    if reason is not None:
        problems.append(f"keys: {reason}")
    urls = sorted({url for route in settings.routes for url in route.upstreams})
    reasons = await asyncio.gather(*(check_reachable(url) for url in urls))
    problems += [f"upstream: {r}" for r in reasons if r is not None]
    problems += probe.problems()
    body: dict[str, object] = {"status": "ready" if not problems else "not_ready",
                               "config": str(settings.source), "upstreams": len(urls)}
    if problems:
        body["reasons"] = problems
    return not problems, body


def create_admin_app(probe: AdminProbe) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, body = await readiness(probe)
        return web.Response(status=200 if ready else 503, content_type="application/json",
                            text=json.dumps(body, separators=(",", ":")),
                            headers={"Cache-Control": "no-store"})

    async def metrics(_: web.Request) -> web.Response:
        body = render_metrics(probe.snapshots())
        return web.Response(body=body, headers={"Content-Type": _PROMETHEUS_TEXT})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
