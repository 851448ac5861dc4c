"""What ``bench/burst.py`` measured, and its Markdown report.

A burst passes when every slice's answer p99 stays under IRIS's 3 s, the deliverer sends at
least 80 % of what the capped backend takes while the pushes arrive, the spool drains, and
every accepted push is in the backend's record file.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DELIVERY_TARGET", "P99_LIMIT_MS", "Outcome", "Sample", "Slice",
           "delivered_records", "render"]

P99_LIMIT_MS = 3000.0  # IRIS counts a 200 only within 3 s
DELIVERY_TARGET = 0.8  # of the capped backend's capacity, while pushes arrive


@dataclass(frozen=True, slots=True)
class Sample:
    second: float  # since the burst began
    delivered: int  # the backend's count of pushes received
    depth: int  # the spool's items waiting
    accepted: int  # the spool's accepted count


@dataclass(frozen=True, slots=True)
class Slice:
    """One wrk run of the burst."""

    start: float
    end: float
    answers: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float


@dataclass
class Outcome:
    delivery: str
    capacity: float
    skipped: str | None = None
    slices: list[Slice] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    first: Sample | None = None
    at_burst_end: Sample | None = None
    burst_seconds: float = 0.0
    burst_cpu: float = 0.0
    answered_2xx: int = 0
    drain_seconds: float = 0.0
    accepted: int = 0
    depth_left: int = 0
    max_in_flight: int = 0
    records: int = 0
    distinct: int = 0
    refused_records: int = 0

    def delivered_at(self, second: float) -> float:
        """The backend's count at ``second``, interpolated between samples."""
        points = self.samples
        if not points:
            return 0.0
        for before, after in itertools.pairwise(points):
            if before.second <= second <= after.second:
                span = after.second - before.second or 1.0
                share = (second - before.second) / span
                return before.delivered + share * (after.delivered - before.delivered)
        return float(points[0].delivered if second < points[0].second
                     else points[-1].delivered)

    @property
    def accepted_rate(self) -> float:
        return self.answered_2xx / self.burst_seconds if self.burst_seconds else 0.0

    @property
    def delivered_during(self) -> float:
        """Deliveries per second while the pushes arrived."""
        if self.first is None or self.at_burst_end is None or not self.burst_seconds:
            return 0.0
        return (self.at_burst_end.delivered - self.first.delivered) / self.burst_seconds

    @property
    def delivered_after(self) -> float:
        if self.at_burst_end is None or not self.samples or self.drain_seconds <= 0:
            return 0.0
        return (self.samples[-1].delivered - self.at_burst_end.delivered) / self.drain_seconds

    @property
    def worst_p99_ms(self) -> float:
        return max((s.p99_ms for s in self.slices), default=0.0)

    @property
    def lost(self) -> int:
        return max(0, self.accepted - self.distinct) + max(0, self.answered_2xx - self.distinct)

    @property
    def passed(self) -> bool:
        return (self.worst_p99_ms < P99_LIMIT_MS and self.lost == 0 and self.depth_left == 0
                and self.delivered_during >= DELIVERY_TARGET * self.capacity
                and not any(s.non_2xx or s.socket_errors for s in self.slices))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accepted_rate": self.accepted_rate,
                "delivered_during": self.delivered_during,
                "delivered_after": self.delivered_after, "worst_p99_ms": self.worst_p99_ms,
                "lost": self.lost, "passed": self.passed}


def delivered_records(path: Path, route: str) -> tuple[int, int, int]:
    """(records, distinct X-Request-Ids, records not answered 2xx) of ``route`` in the
    backend's record file: duplicates are the spool's at-least-once deliveries."""
    records = refused = 0
    ids: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            if entry["path"] != route:
                continue
            records += 1
            if not 200 <= entry["status"] < 300:
                refused += 1
                continue
            ids.add(entry["headers"].get("X-Request-Id", f"line {records}"))
    return records, len(ids), refused


def _slice_rows(outcome: Outcome) -> list[str]:
    rows = ["| seconds | accepted/s | p50 ms | p99 ms | non-2xx | delivered/s |",
            "|---|---:|---:|---:|---:|---:|"]
    for s in outcome.slices:
        span = (s.end - s.start) or 1.0
        delivered = (outcome.delivered_at(s.end) - outcome.delivered_at(s.start)) / span
        rows.append(f"| {s.start:.0f}-{s.end:.0f} | {s.answers / span:,.0f} | "
                    f"{s.p50_ms:,.0f} | {s.p99_ms:,.0f} | {s.non_2xx + s.socket_errors} | "
                    f"{delivered:,.0f} |")
    return rows


def render(meta: dict[str, Any], args: argparse.Namespace, outcomes: list[Outcome]) -> str:
    m, cap = meta["machine"], meta.get("capacity", {})
    lines = [
        f"# Burst of {args.messages:,} {args.users}-user messages, {meta['date']}", "",
        f"- command: `{meta['command']}`",
        f"- machine: {m['cores']} cores, {m['cpu_model']}; Python {m['python']}, aiohttp "
        f"{m['aiohttp']}; wrk, the backend and the gateway share the cores",
        f"- load: wrk -t1 -c{args.connections}, {args.slice:g} s slices, 4 generated "
        f"{args.users}-user bodies rotated, until {args.messages:,} answers are 2xx or "
        f"{args.max_seconds:g} s",
        f"- capped backend: `gateway backend --delay {args.delay:g}`, reached through "
        f"`spool.concurrency: {args.concurrency}`; measured straight (wrk -c"
        f"{args.concurrency}): **{cap.get('rps', 0):,.0f} pushes/s**, "
        f"{cap.get('max_in_flight', 0)} in flight at most",
    ]
    for o in outcomes:
        lines += ["", f"## `delivery: {o.delivery}`", ""]
        if o.skipped is not None:
            lines.append(f"Skipped: {o.skipped}")
            continue
        verdict = "PASS" if o.passed else "FAIL"
        share = o.delivered_during / o.capacity if o.capacity else 0.0
        lines += [
            f"- **{verdict}**: accepted {o.answered_2xx:,} in {o.burst_seconds:.1f} s = "
            f"**{o.accepted_rate:,.0f}/s**, worst slice p99 **{o.worst_p99_ms:,.0f} ms** "
            f"(limit {P99_LIMIT_MS:,.0f})",
            f"- delivered during the burst **{o.delivered_during:,.0f}/s = {share:.0%} of the "
            f"capped backend** (target {DELIVERY_TARGET:.0%}); after it "
            f"{o.delivered_after:,.0f}/s; drained {o.drain_seconds:.1f} s after the last push "
            f"({o.depth_left:,} left); the deliverer had {o.max_in_flight} in flight at most",
            f"- nothing lost: the spool accepted {o.accepted:,}, wrk counted "
            f"{o.answered_2xx:,} 2xx, the backend recorded {o.records:,} pushes of "
            f"{o.distinct:,} distinct X-Request-Ids ({o.records - o.distinct:,} delivered "
            f"twice, {o.refused_records} not 2xx): **{o.lost} lost**",
            f"- gateway CPU during the burst: {o.burst_cpu:.1f} s, "
            f"{o.burst_cpu * 1e6 / max(1, o.answered_2xx):.0f} µs per accepted push "
            f"(deliveries included)", "",
            *_slice_rows(o),
        ]
    return "\n".join(lines) + "\n"
