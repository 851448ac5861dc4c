"""The status page's memory of the last minutes (docs/operations.md#the-status-page).

Every ``SAMPLE_SECONDS`` the admin listener takes the summed metrics (what ``/metrics``
shows, workers included) and keeps the few figures the page charts, for ``KEEP`` samples.
Rates and latency percentiles are differences between two samples, so the request path
counts nothing it did not count before. ``histogram_quantile`` interpolates inside a
bucket as Prometheus's function of that name does, so the page and a dashboard agree.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from gateway.observe.metrics import BUCKETS

__all__ = ["KEEP", "SAMPLE_SECONDS", "History", "RouteSample", "Sample", "histogram_quantile",
           "sample_of"]

SAMPLE_SECONDS = 2.0
KEEP = 450  # 15 minutes

Merged = Mapping[str, Mapping[tuple[str, ...], Any]]


@dataclass(frozen=True, slots=True)
class RouteSample:
    requests: int
    by_class: dict[str, int]  # "2xx" .. "5xx"
    buckets: tuple[float, ...]  # per-bucket counts (the last one +Inf), no sum


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # Unix time
    routes: dict[str, RouteSample]
    tokens_issued: int
    auth_failures: int
    spool_depth: int | None = None


def _empty_buckets() -> list[float]:
    return [0.0] * (len(BUCKETS) + 1)


def sample_of(merged: Merged, at: float, spool_depth: int | None = None) -> Sample:
    """The figures the page keeps, from ``metrics.merge``'s result."""
    routes: dict[str, dict[str, Any]] = {}
    for (route, _method, status), value in merged.get("gateway_requests_total", {}).items():
        entry = routes.setdefault(route, {"requests": 0, "by_class": {}})
        entry["requests"] += int(value)
        kind = f"{status[:1]}xx"
        entry["by_class"][kind] = entry["by_class"].get(kind, 0) + int(value)
    histograms = merged.get("gateway_request_duration_seconds", {})
    result: dict[str, RouteSample] = {}
    for route, entry in routes.items():
        counts = histograms.get((route,))
        buckets = tuple(counts[:-1]) if counts is not None else tuple(_empty_buckets())
        result[route] = RouteSample(entry["requests"], entry["by_class"], buckets)
    return Sample(
        at=at, routes=result,
        tokens_issued=int(sum(merged.get("gateway_tokens_issued_total", {}).values())),
        auth_failures=int(sum(merged.get("gateway_auth_failures_total", {}).values())),
        spool_depth=spool_depth)


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]
                       ) -> float | None:
    """The ``q`` quantile of per-bucket ``counts`` (upper ``bounds``, then +Inf), by linear
    interpolation inside the bucket; None when the histogram is empty. A quantile in the
    +Inf bucket is the highest finite bound, as Prometheus answers."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0.0
    for index, count in enumerate(counts):
        if cumulative + count >= rank and count > 0:
            if index >= len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index > 0 else 0.0
            return lower + (bounds[index] - lower) * (rank - cumulative) / count
        cumulative += count
    return bounds[-1]


def bucket_delta(new: Sequence[float], old: Sequence[float] | None) -> list[float]:
    if old is None:
        return list(new)
    # A counter that went down (a process restarted alone) restarts from zero.
    return [n - o if n >= o else n for n, o in zip(new, old, strict=True)]


class History:
    """The last ``KEEP`` samples, oldest first."""

    def __init__(self, keep: int = KEEP) -> None:
        self.samples: deque[Sample] = deque(maxlen=keep)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def since(self, at: float) -> Sample | None:
        """The oldest sample taken at or after ``at`` (None when there is none)."""
        return next((s for s in self.samples if s.at >= at), None)

    def pairs(self) -> Iterable[tuple[Sample, Sample]]:
        return pairwise(self.samples)
