"""``/status.json``: the status page's one document (docs/operations.md#the-status-page).

Built from what ``/metrics`` shows (the same summed snapshots, the spool's gauges read from
its file), the admin listener's health check and the page's own samples of the last
minutes. The members are documented and stable: new members may appear, none changes
meaning (``version`` would change if one had to). Dead letters carry their id, route,
method, size, times, attempts and the backend's last status and error: never a header or
a body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import Settings
from gateway.observe.metrics import BUCKETS
from gateway.observe.status_history import (
    SAMPLE_SECONDS,
    History,
    Merged,
    Sample,
    bucket_delta,
    histogram_quantile,
)

__all__ = ["RATE_WINDOW_SECONDS", "TOKEN_ROUTE", "DeadLetter", "Health", "status_document"]

VERSION = 1
RATE_WINDOW_SECONDS = 60.0
TOKEN_ROUTE = "/oauth2/token"


@dataclass(frozen=True, slots=True)
class Health:
    """The admin listener's last health check (``/readyz``'s body, and per upstream)."""

    at: float
    ready: bool
    body: Mapping[str, Any]
    upstreams: Mapping[str, str | None]  # origin -> None when reachable, else why not
    certificate_expiry: float | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    route: str
    method: str
    bytes: int
    accepted_at: float
    attempts: int
    last_status: int | None
    last_error: str | None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _series(merged: Merged, name: str) -> dict[tuple[str, ...], Any]:
    return dict(merged.get(name, {}))


def _by_label(merged: Merged, name: str) -> dict[str, int]:
    return {key[0]: int(value) for key, value in sorted(_series(merged, name).items()) if key}


def _rate(now: Sample, then: Sample | None, pick: Callable[[Sample], float]) -> float | None:
    if then is None or now.at - then.at < 1.0:
        return None
    return max(0.0, (pick(now) - pick(then)) / (now.at - then.at))


def _route_doc(path: str, delivery: str | None, now: Sample, then: Sample | None,
               merged: Merged, health: Health | None, upstreams: Sequence[str]) -> dict[str, Any]:
    sample = now.routes.get(path)
    old = then.routes.get(path) if then is not None else None
    statuses: dict[str, int] = {}
    for (route, _method, status), value in merged.get("gateway_requests_total", {}).items():
        if route == path:
            statuses[status] = statuses.get(status, 0) + int(value)
    window = bucket_delta(sample.buckets, old.buckets if old else None) if sample else []
    if then is None and sample is not None:
        window = []  # no sample old enough yet: no percentile rather than an all-time one

    def quantile(q: float) -> float | None:
        value = histogram_quantile(q, BUCKETS, window) if window else None
        return None if value is None else round(value * 1000, 3)

    doc: dict[str, Any] = {
        "route": path, "delivery": delivery,
        "requests": sample.requests if sample else 0,
        "requests_per_s": _round(_rate(now, then, lambda s: s.routes[path].requests
                                       if path in s.routes else 0)),
        "statuses": dict(sorted(statuses.items())),
        "classes": dict(sorted(sample.by_class.items())) if sample else {},
        "latency_ms": {"p50": quantile(0.5), "p99": quantile(0.99),
                       "window_seconds": _round(now.at - then.at, 1) if then else None},
    }
    if delivery is not None:
        doc["upstreams"] = [{"upstream": origin,
                             "reachable": None if health is None else
                             health.upstreams.get(origin) is None,
                             "reason": None if health is None else health.upstreams.get(origin)}
                            for origin in upstreams]
    if delivery == "spool":
        doc["spool"] = {
            "depth": int(_series(merged, "gateway_spool_depth").get((path,), 0)),
            "oldest_age_seconds": _round(
                _series(merged, "gateway_spool_oldest_age_seconds").get((path,), 0.0), 1),
            "dead_letters": int(_series(merged, "gateway_spool_dead_letters").get((path,), 0))}
    return doc


def _history(history: History) -> dict[str, Any]:
    t: list[float] = []
    rps: list[float] = []
    errors: list[float] = []
    refused: list[float] = []
    p99: list[float | None] = []
    depth: list[int | None] = []
    failures: list[float] = []
    for old, new in history.pairs():
        span = new.at - old.at
        if span <= 0:
            continue
        t.append(round(new.at, 3))
        total = sum(r.requests for r in new.routes.values())
        total_old = sum(r.requests for r in old.routes.values())
        rps.append(round(max(0, total - total_old) / span, 3))
        fives = (sum(r.by_class.get("5xx", 0) for r in new.routes.values())
                 - sum(r.by_class.get("5xx", 0) for r in old.routes.values()))
        errors.append(round(max(0, fives) / span, 3))
        fours = (sum(r.by_class.get("4xx", 0) for r in new.routes.values())
                 - sum(r.by_class.get("4xx", 0) for r in old.routes.values()))
        refused.append(round(max(0, fours) / span, 3))
        combined = [0.0] * (len(BUCKETS) + 1)
        for route, sample in new.routes.items():
            before = old.routes.get(route)
            for i, count in enumerate(bucket_delta(sample.buckets,
                                                   before.buckets if before else None)):
                combined[i] += count
        value = histogram_quantile(0.99, BUCKETS, combined)
        p99.append(None if value is None else round(value * 1000, 3))
        depth.append(new.spool_depth)
        failures.append(round(max(0, new.auth_failures - old.auth_failures) / span, 3))
    return {"interval_seconds": SAMPLE_SECONDS, "t": t, "requests_per_s": rps,
            "errors_5xx_per_s": errors, "refusals_4xx_per_s": refused, "p99_ms": p99,
            "spool_depth": depth, "auth_failures_per_s": failures}


def status_document(settings: Settings, merged: Merged, now: Sample, history: History,
                    health: Health | None, dead: Sequence[DeadLetter] | None,
                    origins: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The whole ``/status.json``. ``origins`` maps a route to its upstreams' origins."""
    then = history.since(now.at - RATE_WINDOW_SECONDS)
    routes = [_route_doc(r.path, r.delivery, now, then, merged, health, origins.get(r.path, ()))
              for r in settings.routes]
    token = _route_doc(TOKEN_ROUTE, None, now, then, merged, None, ())
    token_statuses = token["statuses"]
    reload_at = _series(merged, "gateway_config_last_reload_timestamp_seconds")
    last = max(reload_at.items(), key=lambda item: item[1], default=None)
    degraded = int(sum(_series(merged, "gateway_state_degraded").values()))
    workers = _series(merged, "gateway_workers")
    spool_bytes = _series(merged, "gateway_spool_bytes")
    doc: dict[str, Any] = {
        "version": VERSION,
        "generated_at": round(now.at, 3),
        "readiness": None if health is None else {
            "status": health.body.get("status"), "checked_at": round(health.at, 3),
            "reasons": list(health.body.get("reasons", [])),
            "degraded": list(health.body.get("degraded", []))},
        "routes": routes,
        "token_endpoint": {
            "requests": token["requests"], "requests_per_s": token["requests_per_s"],
            "statuses": token_statuses, "rate_limited": token_statuses.get("429", 0),
            "tokens_issued": now.tokens_issued,
            "tokens_issued_by_client": _by_label(merged, "gateway_tokens_issued_total"),
            "tokens_issued_per_s": _round(_rate(now, then, lambda s: s.tokens_issued)),
            "latency_ms": token["latency_ms"]},
        "auth_failures": _by_label(merged, "gateway_auth_failures_total"),
        "upstream_errors": _by_label(merged, "gateway_upstream_errors_total"),
        "in_flight": int(sum(_series(merged, "gateway_in_flight_requests").values())),
        "workers": {"configured": settings.server.workers,
                    "running": int(sum(workers.values())) if workers else 1,
                    "restarts": int(sum(_series(merged, "gateway_worker_restarts_total")
                                        .values()))},
        "reload": {"last_at": None if last is None else round(last[1], 3),
                   "last_result": None if last is None else last[0][0],
                   "counts": _by_label(merged, "gateway_config_reloads_total")},
        "state": {"backend": settings.state.backend,
                  "status": "degraded" if degraded else "ok", "degraded_processes": degraded,
                  "errors": _by_label(merged, "gateway_state_errors_total")},
        "spool": None,
        "dead_letters": [],
        "tls": {"certificate_expires_at": None if health is None else
                _round(health.certificate_expiry)},
        "history": _history(history),
    }
    if spool_bytes:
        doc["spool"] = {
            "path": str(settings.spool.path),
            "depth": int(sum(_series(merged, "gateway_spool_depth").values())),
            "oldest_age_seconds": _round(max(
                _series(merged, "gateway_spool_oldest_age_seconds").values(), default=0.0), 1),
            "bytes": int(sum(spool_bytes.values())),
            "dead_letters": int(sum(_series(merged, "gateway_spool_dead_letters").values())),
            "max_items": settings.spool.max_items, "max_bytes": settings.spool.max_bytes,
            "store": _store(health)}
        doc["dead_letters"] = [
            {"id": d.id, "route": d.route, "method": d.method, "bytes": d.bytes,
             "accepted_at": round(d.accepted_at, 3), "attempts": d.attempts,
             "last_status": d.last_status, "last_error": d.last_error} for d in dead or ()]
    return doc


def _store(health: Health | None) -> str | None:
    """The Redis spool as the last check saw it: where, the primary in use (it changes
    with a Sentinel promotion) and what waits in the local file; None for a file spool."""
    member = health.body.get("spool") if health is not None else None
    if not isinstance(member, dict) or member.get("backend") != "redis":
        return None
    text = f"{member.get('where')}, primary {member.get('primary') or 'unknown'}"
    local = member.get("local")
    if isinstance(local, dict) and local.get("depth"):
        text += f", {local['depth']} in the local file"
    return text
