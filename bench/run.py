"""``python bench/run.py``: what the gateway costs, next to nginx, HAProxy and oidc-provider.

One run, on 127.0.0.1, one sample backend (``gateway backend``), the same payload files and
the same load generator (wrk, one thread, fixed connections; ``gateway loadtest`` when wrk
is missing) for every row: the backend directly, nginx as a TLS proxy, HAProxy 2.6 verifying
ES256 and HS256 JWTs in C with one thread, the gateway with one worker and with
``workers: auto``, the gateway storing pushes in its spool (``delivery: spool``, row 4b,
``spool_row.py``), and the token endpoint against oidc-provider 9. Each row gets a warm-up,
then a measured run with the proxy's CPU time read from /proc. Rows with non-2xx answers are
flagged. Everything started is stopped at the end, also on Ctrl-C. See bench/README.md.

    python bench/run.py                      # everything, ~3-4 minutes
    python bench/run.py --quick              # short runs, two payloads, under a minute
    python bench/run.py --only gateway --only haproxy-es256 --duration 10
    python bench/run.py --micro              # also the in-process micro-benchmarks
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anchors import versions
from fixtures import prepare
from load import have_wrk
from report import Row, machine, render, save
from rows import ROWS
from spool_row import SpoolBench

BENCH = Path(__file__).resolve().parent


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 s runs, 1 s warm-ups, Adobe's sample push and 1,000-user "
                             "payloads only")
    parser.add_argument("--duration", type=float, help="measured seconds per row (default 6)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per row (default 2)")
    parser.add_argument("--connections", type=int, default=50,
                        help="wrk connections, one wrk thread (default 50)")
    parser.add_argument("--only", action="append", metavar="ROW",
                        help=f"run only these rows (repeatable, or comma-separated): "
                             f"{', '.join(ROWS)}")
    parser.add_argument("--micro", action="store_true", help="also run bench/micro.py")
    parser.add_argument("--results", type=Path, default=BENCH / "results",
                        help="where the .md and .json go (default bench/results)")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    only = [k for item in (args.only or []) for k in item.split(",") if k]
    unknown = [k for k in only if k not in ROWS]
    if unknown:
        parser.error(f"--only: unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    args.only = only or list(ROWS)
    args.duration = args.duration or (2.0 if args.quick else 6.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    if not (0 < args.duration <= 120 and 0 <= args.warmup <= 60
            and 1 <= args.connections <= 1000):
        parser.error("bounds: 0 < --duration <= 120, 0 <= --warmup <= 60, "
                     "1 <= --connections <= 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    command = "python " + shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    load = (f"wrk 4 -t1 -c{args.connections} --latency, {args.warmup:g} s warm-up then "
            f"{args.duration:g} s measured per row and payload; POST /segments/aam with "
            "Authorization: Bearer (token obtained beforehand), Content-Type: "
            "application/json, Accept-Encoding: gzip, rotating 4 pre-generated bodies "
            "(1 for Adobe's sample push)") if have_wrk() else (
            "wrk is missing: `gateway loadtest` (the IRIS simulator, in the bench process, "
            f"{args.connections} connections, generated payloads); token rows need wrk")
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "command": command,
        "machine": machine(), "versions": versions(), "load": load,
        "skipped": [], "checks": [],
    }
    rows: list[Row] = []
    micro_rows: list[dict[str, Any]] | None = None
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        bench = SpoolBench(args, prepare(Path(tmp), quick=args.quick), meta, rows)
        try:
            bench.run()
        except KeyboardInterrupt:
            interrupted = True
            print("bench: interrupted; stopping everything it started", file=sys.stderr)
        finally:
            bench.procs.stop_all()
    if interrupted:
        return 130
    micro_md = None
    if args.micro:
        from micro import format_micro, run_micro

        micro_rows = run_micro(quick=args.quick)
        micro_md = format_micro(micro_rows)
    markdown = render(meta, rows, micro_md)
    print(markdown)
    if not args.no_save:
        md_path, json_path = save(args.results, meta, rows, micro_rows, markdown)
        print(f"saved {md_path} and {json_path}")
    return 1 if any(r.flagged for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
