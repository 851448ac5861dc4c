"""Micro-benchmark: a 10,000-profile AEP batch on a schema route beside a 10,000-user IRIS batch.

Not a test. Both checks run as the pipeline runs a large body (``PayloadCheck.check_large``,
with the loop free between slices): the ``aam-segments`` profile on a batch from
``gateway.tools.payloads`` and ``payload: {schema: docs/schemas/aep-profiles.json}`` on a
batch from ``gateway.tools.aep_payloads``. For each: the median and p90 of the whole check
(ms of this thread's CPU, so a neighbour's load does not count), the longest CPU time the
check held the loop between two of its yields (median over the runs), and the Python
memory it allocated at its peak beside the body (tracemalloc). The collector is settled
first, as in a serving process (``serve/collector.py``). The
schema route is also timed checked whole (``SchemaCheck``: what it cost before the slices).
The budget (docs/adobe.md, bench/micro_payload.py): a 10,000-user batch in well under a
second, the loop never held for long, memory not much beyond the body.

    python bench/micro_aep.py
    python bench/micro_aep.py --count 1000 10000 --runs 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import PayloadSchema, RouteSettings
from gateway.serve.collector import settle_collector
from gateway.stages.payload import payload_check
from gateway.stages.payload.schema import SchemaCheck
from gateway.tools.aep_payloads import make_aep_batch_bytes
from gateway.tools.payloads import make_payload_bytes

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schemas" / "aep-profiles.json"


def _route(payload: str, schema: PayloadSchema | None = None) -> RouteSettings:
    return RouteSettings(path="/bench", upstreams=("http://127.0.0.1:1/",), payload=payload,  # type: ignore[arg-type]
                         payload_schema=schema)


async def _one(check: Callable[[bytes], Awaitable[None]], body: bytes) -> tuple[float, float]:
    """The check's CPU ms, and the most CPU ms it spent between two of its yields.

    CPU time of this thread (``time.thread_time``), not wall time: on a machine shared with
    other processes a preemption is not the check's cost, and would read as a long hold."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    last = time.thread_time()
    done = False

    def tick() -> None:
        nonlocal last
        now = time.thread_time()
        gaps.append(now - last)
        last = now
        if not done:
            loop.call_soon(tick)

    loop.call_soon(tick)
    started = time.thread_time()
    await check(body)
    ended = time.thread_time()
    done = True
    gaps.append(ended - last)
    return (ended - started) * 1000, max(gaps) * 1000


async def _run(check: Callable[[bytes], Awaitable[None]], body: bytes,
               runs: int) -> tuple[list[float], list[float]]:
    results = [await _one(check, body) for _ in range(3 + runs)][3:]  # three warm up
    return [cost for cost, _ in results], [hold for _, hold in results]


def _measure(check: Callable[[bytes], Awaitable[None]], body: bytes,
             runs: int) -> tuple[float, float, float, float]:
    """(median ms, p90 ms, median longest loop hold ms, peak allocated MB) of ``runs``."""
    samples, holds = asyncio.run(_run(check, body, runs))
    tracemalloc.start()
    asyncio.run(check(body))
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    samples.sort()
    return (statistics.median(samples), samples[len(samples) * 9 // 10],
            statistics.median(holds), peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, nargs="+", default=[10_000],
                        help="users (IRIS) and profiles (AEP) per batch")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    schema = PayloadSchema(path=SCHEMA, text=SCHEMA.read_text(encoding="utf-8"))
    aam = payload_check(_route("aam-segments")).check_large
    aep = payload_check(_route("schema", schema)).check_large
    whole = SchemaCheck(schema)

    async def aep_whole(body: bytes) -> None:
        whole(body)

    print(f"{'batch':<34} {'bytes':>10} {'median ms':>10} {'p90 ms':>8} "
          f"{'loop held ms':>13} {'peak MB':>8}")
    for count in args.count:
        rows = (
            (f"{count:,} users, aam-segments", aam,
             make_payload_bytes(count, random.Random(args.seed))),
            (f"{count:,} profiles, aep-profiles.json", aep,
             make_aep_batch_bytes(count, random.Random(args.seed))),
            (f"{count:,} profiles, schema whole", aep_whole,
             make_aep_batch_bytes(count, random.Random(args.seed))),
        )
        # As a serving process does once started (serve/collector.py): what lives for good
        # leaves the collector's generations, so a full collection walks only new objects.
        settle_collector()
        for name, check, body in rows:
            median, p90, hold, peak = _measure(check, body, args.runs)
            print(f"{name:<34} {len(body):>10,} {median:>10.1f} {p90:>8.1f} "
                  f"{hold:>13.1f} {peak:>8.1f}")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
