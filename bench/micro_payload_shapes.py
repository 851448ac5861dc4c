"""Micro-benchmark of the payload stage on hostile shapes: how long one check holds the loop.

Not a test. For bodies of 256 KiB to 1 MiB made of the shapes that cost msgspec the most per
byte (tiny users, tiny segments, one user whose ``AAM_Regions`` is ``[{},{},...]``) and of a
generated IRIS batch, it times the one-call check (``check_whole`` of ``payload/aam.py``,
what bodies up to ``payload.LARGE_BODY_BYTES`` get) and the sliced check (``check_sliced``,
larger ones): its total, and its longest step between two turns of the event loop, which is
what other requests wait. Medians of a few runs, in milliseconds.

    python bench/micro_payload_shapes.py
    python bench/micro_payload_shapes.py --runs 9 --sizes 384 1024
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.stages.payload import LARGE_BODY_BYTES
from gateway.stages.payload import aam as payload_aam
from gateway.stages.payload.profiles import FAITHFUL
from gateway.tools.payloads import make_payload_bytes


def _users(count: int, user: bytes) -> bytes:
    return b'{"Users":[' + b",".join([user] * count) + b"]}"


def shapes(size: int) -> dict[str, bytes]:
    segments = b",".join([b'{"Segment_ID":1,"Status":1}'] * (size // 28))
    regions = b",".join([b"{}"] * (size // 3))
    return {
        "tiny users": _users(size // 31, b'{"AAM_UUID":"x","Segments":[]}'),
        "tiny segments": _users(1, b'{"AAM_UUID":"x","Segments":[' + segments + b"]}"),
        "[{},{},...] regions": _users(
            1, b'{"AAM_UUID":"x","Segments":[],"AAM_Regions":[' + regions + b"]}"),
        "generated batch": make_payload_bytes(max(1, size // 286), random.Random(size)),
    }


def median_ms(check: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        check()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def sliced(body: bytes) -> tuple[float, float]:
    """(longest step between two loop turns, total), in milliseconds."""
    steps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            steps.append(now - last)
            last = now

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    steps.clear()
    start = time.perf_counter()
    await payload_aam.check_sliced(FAITHFUL, body)
    total = time.perf_counter() - start
    running = False
    await task
    return max(steps) * 1000, total * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512, 1024],
                        metavar="KIB")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"one call up to {LARGE_BODY_BYTES // 1024} KiB, sliced above")
    print(f"{'KiB':>5} {'shape':<20} {'one call ms':>11} {'sliced: step ms':>15} "
          f"{'total ms':>9}")
    loop = asyncio.new_event_loop()
    for kib in args.sizes:
        for name, body in shapes(kib * 1024).items():
            whole = median_ms(lambda b=body: payload_aam.check_whole(FAITHFUL, b), args.runs)
            runs = [loop.run_until_complete(sliced(body)) for _ in range(args.runs)]
            print(f"{kib:>5} {name:<20} {whole:>11.2f} "
                  f"{statistics.median(r[0] for r in runs):>15.2f} "
                  f"{statistics.median(r[1] for r in runs):>9.2f}")
    loop.close()


if __name__ == "__main__":
    main()
