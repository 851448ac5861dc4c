"""The admin listener (docs/operations.md): ``/healthz``, ``/readyz`` and ``/metrics``; never the
public port.

``/healthz`` says the process serves. ``/readyz`` is 200 only when the configuration is
loaded, the signing key signs and verifies, every upstream accepts a TCP connection
(``upstream.check_reachable``) and, under a supervisor, every worker runs; otherwise 503
with each reason. A shared state that cannot be reached (Redis down) makes it *degraded*,
still 200: every instance shares the one Redis, so a 503 would make the load balancer pull
the whole fleet at once, while the gateway serves valid traffic without it (``shared.py``).
``/metrics`` is the Prometheus text of ``metrics.py``: this process's counts, or with
workers the sum of all of theirs.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Protocol

from aiohttp import web

from gateway.config import Settings
from gateway.errors import error_middleware
from gateway.forward.upstream import check_reachable
from gateway.oauth.keys import KeySet
from gateway.observe.metrics import Snapshot
from gateway.observe.metrics import render as render_metrics
from gateway.spool.status import spool_readiness, spool_snapshot

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
    # A spool route accepts while its backend is away (docs/operations.md): its backend being down
    # must not take the gateway out of a load balancer, which would refuse the very pushes
    # the spool exists to keep. Only backends of direct routes decide readiness.
    direct = {url for route in settings.routes if route.delivery == "direct"
              for url in route.upstreams}
    reasons = await asyncio.gather(*(check_reachable(url) for url in urls))
    waiting = [f"upstream: {r}" for url, r in zip(urls, reasons, strict=True)
               if r is not None and url not in direct]
    problems += [f"upstream: {r}" for url, r in zip(urls, reasons, strict=True)
                 if r is not None and url in direct]
    problems += probe.problems()
    # The spool (docs/operations.md) is reported; it makes the gateway not ready only when its file
    # cannot be written, since then a spool route can accept nothing.
    spool, spool_problem = await spool_readiness(settings)
    problems += [spool_problem] if spool_problem else []
    degraded = _state_degraded(probe.snapshots())
    # A Redis spool that is away: pushes go to the local file, so degraded, not out.
    spool_degraded = spool.get("degraded") if spool is not None else None
    status = ("not_ready" if problems else "degraded" if degraded or spool_degraded
              else "ready")
    body: dict[str, object] = {"status": status,
                               "config": str(settings.source), "upstreams": len(urls)}
    if problems:
        body["reasons"] = problems
    reasons = [str(spool_degraded)] if spool_degraded else []
    if degraded:
        reasons.insert(0,
            f"state: the {settings.state.backend} shared state is unreachable from "
            f"{degraded} process(es); revocations known before still apply, failed-"
            "authentication counts and rate limits are per process until it returns")
    if reasons:
        body["degraded"] = reasons
    if spool is not None:
        body["spool"] = spool
    if waiting:
        body["spooling"] = waiting  # unreachable backends of spool routes: pushes wait
    return not problems, body


def _state_degraded(snapshots: list[Snapshot]) -> int:
    """How many processes report their shared state unreachable (the metrics' gauge)."""
    return sum(int(value) for snapshot in snapshots
               for _, value in snapshot.get("gateway_state_degraded", ()))


def create_admin_app(probe: AdminProbe) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, body = await readiness(probe)
        return web.Response(status=200 if ready else 503, content_type="application/json",
                            text=json.dumps(body, separators=(",", ":")),
                            headers={"Cache-Control": "no-store"})

    async def metrics(_: web.Request) -> web.Response:
        settings = probe.current()[0]
        # The spool's gauges are read from its file: one per machine, never summed.
        body = render_metrics([*probe.snapshots(), *await spool_snapshot(settings)])
        return web.Response(body=body, headers={"Content-Type": _PROMETHEUS_TEXT})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
