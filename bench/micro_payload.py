"""Micro-benchmark of the payload stage: milliseconds per ``aam-segments`` validation.

Not a test. Times ``validate_aam_segments`` (and, for comparison, ``validate_json``, the
check of ``payload: none`` routes) on realistic IRIS pushes from ``gateway.tools.payloads``
with ``time.perf_counter``, and reports the median of many runs, which a noisy neighbour on
a shared machine moves far less than the mean. docs/adobe.md's budget: a 10,000-user batch in well
under a second; the team's target is 20 ms.

    python bench/micro_payload.py                 # 10 and 10,000 users
    python bench/micro_payload.py --users 1 10 1000 10000 --runs 200
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a plain script from a checkout: make the repository's package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.stages.payload import validate_aam_segments, validate_json
from gateway.tools.payloads import make_payload_bytes


def time_ms(check: Callable[[bytes], None], body: bytes, runs: int) -> list[float]:
    """Milliseconds of each of ``runs`` calls, after a few warm-up calls."""
    for _ in range(3):
        check(body)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        check(body)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def runs_for(users: int, requested: int | None) -> int:
    # Small documents take microseconds: many more runs for a stable median.
    return requested if requested is not None else max(50, min(5000, 500_000 // users))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--runs", type=int, default=None, help="timed runs per size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    print(f"{'users':>7} {'bytes':>10} {'check':<22} {'runs':>5} "
          f"{'median ms':>10} {'p10 ms':>9} {'p90 ms':>9}")  # fmt: skip
    for users in args.users:
        body = make_payload_bytes(users, random.Random(args.seed))
        runs = runs_for(users, args.runs)
        for name, check in (
            ("validate_aam_segments", validate_aam_segments),
            ("validate_json", validate_json),
        ):
            samples = sorted(time_ms(check, body, runs))
            p10, p90 = samples[len(samples) // 10], samples[len(samples) * 9 // 10]
            print(f"{users:>7} {len(body):>10} {name:<22} {runs:>5} "
                  f"{statistics.median(samples):>10.3f} {p10:>9.3f} {p90:>9.3f}")  # fmt: skip
    # Medians from a machine that is busy with something else are not this code's cost.
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
