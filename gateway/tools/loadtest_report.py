"""The IRIS simulator's report: what a load run measured, for people and for machines.

``gateway loadtest`` (docs/operations.md) ends with requests/s, latency p50/p90/p99/max, status
counts,
token fetches and errors by kind. Success follows IRIS's own rule (docs/adobe.md): only an exact
``200 OK`` counts; 201, 202, 204 and every other code are failures. The report also carries
the simulator's own CPU use, because a load generator that saturates its core measures itself,
not the gateway; ``bottleneck`` says so when that happens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.tools.loadtest_bottleneck import (
    SIMULATOR_BOTTLENECK,
    GatewayTimes,
    Verdict,
    verdict,
)

if TYPE_CHECKING:
    from gateway.tools.loadtest_html import LoadSamples

__all__ = ["SIMULATOR_BOTTLENECK", "LatencySummary", "LoadReport", "percentile"]


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 for an empty sequence).

    Nearest rank returns a value that was really observed, so ``p99`` of a run is the latency
    some request actually had, never an interpolation between two of them.
    """
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {pct!r}")
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    """Latency of the requests that got a response, in milliseconds."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> LatencySummary:
        ordered = sorted(s * 1000.0 for s in samples)
        mean = sum(ordered) / len(ordered) if ordered else 0.0
        return cls(
            p50=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            max=ordered[-1] if ordered else 0.0,
            mean=mean,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReport:
    """The outcome of one load run; ``to_dict`` for ``--json``, ``render`` for a terminal."""

    url: str
    method: str
    profile: str = "iris"  # "aep": the pushes were AEP batches of profiles (loadtest_aep.py)
    concurrency: int
    users_per_request: int
    rate: float | None
    requests: int
    duration_s: float
    latency_ms: LatencySummary
    status_counts: Mapping[int, int]
    errors: Mapping[str, int]
    token_fetches: int
    token_failures: int = 0
    cpu_s: float
    cpu_count: int
    notes: tuple[str, ...] = field(default=())
    # Each answered push, for ``--report``'s charts (loadtest_html.py); not in to_dict.
    samples: LoadSamples | None = field(default=None, compare=False, repr=False)
    # The gateway's own counts for the route over the run (--admin-url), or why not.
    gateway: GatewayTimes | None = None
    scrape_problem: str | None = None

    @property
    def successes(self) -> int:
        # IRIS semantics: exactly 200 is success, any other answer is a failed push.
        return self.status_counts.get(200, 0)

    @property
    def success_rate(self) -> float:
        return self.successes / self.requests if self.requests else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def cpu_utilisation(self) -> float:
        """The simulator's own CPU time over wall time: 1.0 is one core fully busy."""
        return self.cpu_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def simulator_bottleneck(self) -> bool:
        return self.cpu_utilisation >= SIMULATOR_BOTTLENECK

    @property
    def bottleneck(self) -> Verdict:
        return verdict(self.cpu_utilisation, self.gateway, self.scrape_problem)

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready object; status codes become string keys as JSON requires."""
        return {
            "url": self.url,
            "method": self.method,
            "profile": self.profile,
            "concurrency": self.concurrency,
            "users_per_request": self.users_per_request,
            "rate": self.rate,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 6),
            "requests_per_s": round(self.requests_per_s, 3),
            "latency_ms": {
                "p50": round(self.latency_ms.p50, 3),
                "p90": round(self.latency_ms.p90, 3),
                "p99": round(self.latency_ms.p99, 3),
                "max": round(self.latency_ms.max, 3),
                "mean": round(self.latency_ms.mean, 3),
            },
            "status_counts": {str(code): n for code, n in sorted(self.status_counts.items())},
            "successes": self.successes,
            "success_rate": round(self.success_rate, 6),
            "errors": dict(sorted(self.errors.items())),
            "token_fetches": self.token_fetches,
            "token_failures": self.token_failures,
            "simulator": {
                "cpu_s": round(self.cpu_s, 6),
                "cpu_utilisation": round(self.cpu_utilisation, 4),
                "cpu_per_request_us": round(self.cpu_per_request_us, 2),
                "cpu_count": self.cpu_count,
                "bottleneck": self.simulator_bottleneck,
            },
            "bottleneck": {"where": self.bottleneck.where, "why": self.bottleneck.why},
            "gateway": None if self.gateway is None else {
                "requests": self.gateway.requests,
                "request_seconds": round(self.gateway.request_seconds, 6),
                "upstream_seconds": round(self.gateway.upstream_seconds, 6),
            },
            "notes": list(self.notes),
        }

    def _verdicts(self) -> list[str]:
        return [*self.notes, self.bottleneck.why]

    def rows(self) -> list[tuple[str, str]]:
        """The report as (label, value) pairs, shared by ``format_text`` and ``render``."""
        lat = self.latency_ms
        statuses = ", ".join(f"{c}: {n}" for c, n in sorted(self.status_counts.items()))
        errors = ", ".join(f"{k}: {n}" for k, n in sorted(self.errors.items()))
        rate = f"{self.rate:g} req/s" if self.rate else "unpaced"
        return [
            ("target", f"{self.method} {self.url}"),
            (
                "load",
                f"concurrency {self.concurrency}, {self.users_per_request} "
                f"{'profiles' if self.profile == 'aep' else 'users'}/request, {rate}",
            ),
            (
                "requests",
                f"{self.requests} in {self.duration_s:.2f} s = {self.requests_per_s:.1f} req/s",
            ),
            (
                "latency (ms)",
                f"p50 {lat.p50:.2f}  p90 {lat.p90:.2f}  p99 {lat.p99:.2f}  max {lat.max:.2f}",
            ),
            ("statuses", statuses or "none"),
            ("success (200)", f"{self.successes}/{self.requests} = {self.success_rate:.2%}"),
            ("errors", errors or "none"),
            ("token fetches", f"{self.token_fetches} ({self.token_failures} failed)"),
            (
                "simulator CPU",
                f"{self.cpu_s:.2f} s = {self.cpu_utilisation:.0%} of one core "
                f"({self.cpu_per_request_us:.0f} us/request, {self.cpu_count} cores here)",
            ),
        ]

    def format_text(self) -> str:
        """Plain text, the same content as ``render``, for logs and non-terminal output."""
        lines = [f"{label:<16}{value}" for label, value in self.rows()]
        return "\n".join(lines + self._verdicts())

    def render(self, console: Console) -> None:
        """Print the report as a rich table, followed by any verdicts in bold."""
        caller = "AEP" if self.profile == "aep" else "IRIS"
        table = Table(title=f"{caller} simulator: load report", show_header=False, box=None)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for label, value in self.rows():
            # Text, not markup: a value such as https://[::1]:8443 must print as written.
            table.add_row(Text(label), Text(value))
        console.print(table)
        for line in self._verdicts():
            console.print(Text(line, style="bold yellow"))
