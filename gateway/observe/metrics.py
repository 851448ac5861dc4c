"""The gateway's metrics (docs/operations.md), counted in-process and exposed in Prometheus text.

Counting costs a dict update per request (~0.1 µs), not prometheus-client's multiprocess
mode (measured ~1.1 µs per counter and ~1.9 µs per histogram observation, several per
request). prometheus-client still writes the exposition format: ``render`` feeds merged
snapshots to a custom collector. With several workers each writes its ``snapshot()`` to a
file in a directory the supervisor made, about once a second; the admin listener sums
them (``supervisor.py``). Counters of a dead worker are kept, its gauges dropped.

Label values are bounded: routes are configured paths or ``unmatched``, methods the ones
the gateway knows, clients configured ones, reasons and kinds fixed lists.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

__all__ = ["BUCKETS", "Metrics", "Snapshot", "merge", "read_snapshots", "render",
           "write_snapshot"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0, 30.0)
# name -> (type, label names, help). The one list of what /metrics shows.
SCHEMA: dict[str, tuple[str, tuple[str, ...], str]] = {
    "gateway_requests_total": ("counter", ("route", "method", "status"),
                               "Requests answered, by route, method and status."),
    "gateway_request_duration_seconds": ("histogram", ("route",),
                                         "Time from request to last byte sent."),
    "gateway_upstream_duration_seconds": ("histogram", ("route",),
                                          "Time spent forwarding to the backend."),
    "gateway_in_flight_requests": ("gauge", (), "Requests being handled now."),
    "gateway_tokens_issued_total": ("counter", ("client_id",), "Access tokens issued."),
    "gateway_tokens_revoked_total": ("counter", (), "Access tokens revoked (RFC 7009)."),
    "gateway_auth_failures_total": ("counter", ("reason",),
                                    "Refused authentications, by OAuth error."),
    "gateway_token_cache_hits_total": ("counter", (), "Bearer tokens found verified."),
    "gateway_token_cache_misses_total": ("counter", (), "Bearer tokens verified anew."),
    "gateway_upstream_errors_total": ("counter", ("kind",), "Failed forwards, by kind."),
    "gateway_payload_rejections_total": ("counter", ("route", "reason"),
                                         "Bodies refused before forwarding."),
    "gateway_payload_violations_total": ("counter", ("route", "reason"),
                                         "Bodies that failed their payload profile, refused "
                                         "or (payload_mode: report) forwarded."),
    "gateway_fallback_spooled_total": ("counter", ("route", "reason"),
                                       "Fallback pushes spooled instead of relayed, by why."),
    "gateway_config_reloads_total": ("counter", ("result",), "SIGHUP reloads, ok or error."),
    "gateway_config_last_reload_timestamp_seconds": (
        "gauge", ("result",), "When the last reload with this result happened (Unix time)."),
    "gateway_spool_accepted_total": ("counter", ("route",), "Requests stored by the spool."),
    "gateway_spool_refused_total": ("counter", ("route",),
                                    "Requests refused 503: the spool was full."),
    "gateway_spool_delivered_total": ("counter", ("route",), "Spooled requests delivered."),
    "gateway_spool_retries_total": ("counter", ("route",),
                                    "Spooled deliveries that failed and wait to be retried."),
    "gateway_spool_dead_letters_total": ("counter", ("route",),
                                         "Spooled requests moved to the dead-letter list."),
    "gateway_spool_commits_total": ("counter", (), "Spool transactions (one fsync each)."),
    "gateway_spool_fallback_total": ("counter", ("route",), "Requests stored in the local "
                                     "file because the Redis spool could not take them."),
    "gateway_spool_moved_total": ("counter", ("route",),
                                  "Requests moved from the local file to the Redis spool."),
    "gateway_spool_unreplicated_total": ("counter", ("route",), "Requests kept in the local "
                                         "file: fewer than spool.min_replicas confirmed them."),
    "gateway_spool_redelivery_skipped_total": ("counter", ("route",), "Redis spool entries "
                                               "not sent again: this process delivered "
                                               "their key already."),
    "gateway_spool_depth": ("gauge", ("route",), "Spooled requests waiting for delivery."),
    "gateway_spool_oldest_age_seconds": ("gauge", ("route",),
                                         "Age of the oldest request waiting for delivery."),
    "gateway_spool_dead_letters": ("gauge", ("route",), "Requests on the dead-letter list."),
    "gateway_spool_bytes": ("gauge", (), "Bytes stored in the spool, dead letters included."),
    "gateway_spool_fallback_depth": ("gauge", (), "Requests in the local fallback file, "
                                     "waiting to move to the Redis spool."),
    "gateway_worker_restarts_total": ("counter", (), "Workers replaced after they died."),
    "gateway_workers": ("gauge", (), "Worker processes running."),
    "gateway_state_degraded": ("gauge", (), "Processes that cannot reach the shared state "
                               "(Redis, SQLite) now; they serve on, degraded."),
    "gateway_state_errors_total": ("counter", ("operation",),
                                   "Failed calls to the shared state, by operation."),
    # Set by the admin listener's health check (serve/status_routes.py), every few seconds.
    "gateway_ready": ("gauge", (), "1 when /readyz would answer 200, else 0."),
    "gateway_upstream_reachable": ("gauge", ("upstream",),
                                   "1 when the upstream accepts a TCP connection, else 0."),
    "gateway_tls_certificate_expiry_timestamp_seconds": (
        "gauge", (), "When the serving certificate (server.tls.cert_file) expires (Unix time)."),
}
_HISTOGRAMS = {n for n, (kind, _, _) in SCHEMA.items() if kind == "histogram"}
_GAUGES = {n for n, (kind, _, _) in SCHEMA.items() if kind == "gauge"}
# Points in time are not amounts: several workers' copies merge to the latest, not the sum.
_LATEST = {n for n in SCHEMA if n.endswith("_timestamp_seconds")}
_RELOADS = "gateway_config_reloads_total"

# A snapshot: metric name -> list of [label values, value]; a histogram's value is its
# per-bucket counts (the last one +Inf) followed by the sum.
Snapshot = dict[str, list[list[Any]]]


class CounterSource(Protocol):
    def counters(self) -> dict[str, int]:
        """Counts kept elsewhere (token cache, upstream errors), keyed by metric name or
        ``name:label``."""


class Metrics:
    """One process's counts; the request path only adds to plain dicts."""

    def __init__(self) -> None:
        self.inflight = 0
        self.workers: int | None = None
        self.state_degraded: int | None = None  # set by state/mirror.py's SharedState, 0 or 1
        self.requests: dict[tuple[str, str, str], int] = {}
        self.request_seconds: dict[str, list[float]] = {}
        self.upstream_seconds: dict[str, list[float]] = {}
        self.counts: Counter[tuple[str, tuple[str, ...]]] = Counter()
        self._sources: list[CounterSource] = []
        self._retired: Counter[str] = Counter()
        self.reloaded_at: dict[str, float] = {}  # result -> Unix time of the last such reload

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        _observe(self.request_seconds, route, seconds)

    def observe_upstream(self, route: str, seconds: float) -> None:
        _observe(self.upstream_seconds, route, seconds)

    def count(self, name: str, *labels: str) -> None:
        """One more of a rarer event (tokens, refusals, reloads)."""
        self.counts[(name, labels)] += 1
        if name == _RELOADS:  # a reload's outcome also says when the last one happened
            self.reloaded_at[labels[0]] = time.time()

    def loaded(self) -> None:
        """The configuration this process started with was loaded: like Prometheus's own
        ``..._last_reload_success_timestamp_seconds``, the start-up load counts as a
        successful reload, so rules comparing the ``ok`` and ``error`` times have both
        sides from the first scrape (the reload counter itself counts SIGHUPs only)."""
        self.reloaded_at["ok"] = time.time()

    def attach(self, source: CounterSource) -> None:
        self._sources.append(source)

    def detach(self, source: CounterSource) -> None:
        """Keep a retired source's final counts, so counters never go down."""
        self._retired.update(source.counters())
        self._sources.remove(source)

    def snapshot(self) -> Snapshot:
        snap: Snapshot = {name: [] for name in SCHEMA}
        snap["gateway_requests_total"] = [[list(k), v] for k, v in self.requests.items()]
        snap["gateway_request_duration_seconds"] = [
            [[k], list(v)] for k, v in self.request_seconds.items()]
        snap["gateway_upstream_duration_seconds"] = [
            [[k], list(v)] for k, v in self.upstream_seconds.items()]
        snap["gateway_in_flight_requests"] = [[[], self.inflight]]
        if self.workers is not None:
            snap["gateway_workers"] = [[[], self.workers]]
        if self.state_degraded is not None:
            snap["gateway_state_degraded"] = [[[], self.state_degraded]]
        for (name, labels), value in self.counts.items():
            snap[name].append([list(labels), value])
        snap["gateway_config_last_reload_timestamp_seconds"] = [
            [[result], at] for result, at in self.reloaded_at.items()]
        sourced = Counter(self._retired)
        for source in self._sources:
            sourced.update(source.counters())
        for key, value in sourced.items():
            name, _, label = key.partition(":")
            snap[name].append([[label] if label else [], value])
        return snap


def _observe(table: dict[str, list[float]], key: str, seconds: float) -> None:
    counts = table.get(key)
    if counts is None:
        counts = table[key] = [0.0] * (len(BUCKETS) + 2)
    counts[bisect_left(BUCKETS, seconds)] += 1
    counts[-1] += seconds


def merge(snapshots: Iterable[Snapshot]) -> dict[str, dict[tuple[str, ...], Any]]:
    """Sum snapshots series by series (histograms bucket by bucket)."""
    merged: dict[str, dict[tuple[str, ...], Any]] = {name: {} for name in SCHEMA}
    for snapshot in snapshots:
        for name, series in snapshot.items():
            if name not in merged:
                continue
            table = merged[name]
            for labels, value in series:
                key = tuple(labels)
                if name in _HISTOGRAMS:
                    old = table.get(key)
                    table[key] = list(value) if old is None else [
                        a + b for a, b in zip(old, value, strict=True)]
                elif name in _LATEST:
                    table[key] = max(table.get(key, value), value)
                else:
                    table[key] = table.get(key, 0) + value
    return merged


def without_gauges(snapshot: Snapshot) -> Snapshot:
    """What a dead worker still contributes: its counters, not its in-flight requests."""
    return {name: series for name, series in snapshot.items() if name not in _GAUGES}


class _Collector:
    def __init__(self, merged: dict[str, dict[tuple[str, ...], Any]]) -> None:
        self._merged = merged

    def collect(self) -> Iterator[Metric]:
        for name, (kind, labels, doc) in SCHEMA.items():
            series = self._merged.get(name, {})
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(name, doc, labels=labels)
                for key, value in sorted(series.items()):
                    family.add_metric(list(key), value)
            elif kind == "gauge":
                if not series:
                    continue
                family = GaugeMetricFamily(name, doc, labels=labels)
                for key, value in sorted(series.items()):
                    family.add_metric(list(key), value)
            else:
                family = HistogramMetricFamily(name, doc, labels=labels)
                for key, counts in sorted(series.items()):
                    cumulative, buckets = 0.0, []
                    for bound, count in zip((*BUCKETS, float("inf")), counts[:-1], strict=True):
                        cumulative += count
                        buckets.append((_le(bound), cumulative))
                    family.add_metric(list(key), buckets, sum_value=counts[-1])
            yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def render(snapshots: Iterable[Snapshot]) -> bytes:
    """The Prometheus text exposition of the summed snapshots."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(merge(snapshots)))
    return generate_latest(registry)


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Replace ``path`` atomically: a reader sees the old snapshot or the new, whole."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(msgspec.json.encode(snapshot))
    os.replace(temporary, path)


def read_snapshots(directory: Path, pattern: str = "worker-*.json") -> list[Snapshot]:
    snapshots = []
    for path in sorted(directory.glob(pattern)):
        try:
            snapshots.append(msgspec.json.decode(path.read_bytes()))
        except (OSError, msgspec.DecodeError):
            continue  # a worker replaced it as we looked; its next one comes in a second
    return snapshots
