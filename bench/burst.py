"""``python bench/burst.py``: Adobe's daily batch against a backend slower than IRIS.

IRIS sends a day's segment updates as a burst of messages of at most 10 users each (Audience
Manager's default "Maximum Users Per Request"). This pushes ``--messages`` such messages
(100,000 by default, generated like IRIS's sample by ``gateway/tools/payloads.py``) as fast
as wrk can, through a ``delivery: spool`` route whose backend is capped well below the
gateway's rate: the sample backend with a fixed service time (``gateway backend --delay``)
reached through ``spool.concurrency`` connections, so it can take at most
``concurrency / delay`` pushes a second. Its real capacity is measured first, by wrk with
that many connections straight to it, and the concurrency the deliverer really used is read
back from the backend (``max_in_flight``), so the cap is the one intended.

Reported: accepted per second and the answers' p99 in every slice of the burst (IRIS counts
only a 200 within 3 s), delivered per second during the burst and after it, the time to
drain, and nothing lost: every push the gateway accepted is in the backend's record file
(counted by X-Request-Id against the spool's accepted count and wrk's 2xx). The same runs
for a ``delivery: fallback`` route when this checkout's configuration accepts that key, and
is skipped with the configuration's own error otherwise.

    python bench/burst.py                          # 100,000 messages, ~6-8 minutes
    python bench/burst.py --messages 30000 --delay 0.01 --concurrency 4 --no-save
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from burst_report import Outcome, Sample, Slice, delivered_records, render
from fixtures import Fixtures, prepare
from load import run_wrk, write_script
from procs import Started
from report import machine
from rows import Bench

from gateway.tools.payloads import make_payload_bytes

BENCH = Path(__file__).resolve().parent
ROUTE = "/segments/aam"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000,
                        help="pushes to get answered 2xx (default 100,000)")
    parser.add_argument("--users", type=int, default=10, help="users per message (default 10)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="the burst stops here even short of --messages (default 300)")
    parser.add_argument("--drain-seconds", type=float, default=900.0,
                        help="the most to wait for the spool to drain (default 900)")
    parser.add_argument("--slice", type=float, default=5.0,
                        help="seconds per wrk run, one row of the report (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--delay", type=float, default=0.05,
                        help="the backend's service time, seconds (default 0.05)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="spool.concurrency: deliveries in flight (default 16)")
    parser.add_argument("--route", choices=("spool", "fallback", "both"), default="both")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if not (1 <= args.messages <= 10_000_000 and 1 <= args.users <= 10_000
            and 1 <= args.max_seconds <= 3600 and 1 <= args.drain_seconds <= 7200
            and 1 <= args.slice <= 60 and 1 <= args.connections <= 1000
            and 0.001 <= args.delay <= 10 and 1 <= args.concurrency <= 256):
        parser.error("out of bounds: see --help")
    return args


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback http
        return dict(json.load(answer))


def _post_json(url: str, doc: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(doc).encode(),  # noqa: S310
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback http only


def spool_metrics(admin: int) -> dict[str, float]:
    """The gateway's ``gateway_spool_*`` figures, summed over routes."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("gateway_spool_"):
            name, value = line.rsplit(" ", 1)
            key = re.sub(r"\{.*\}", "", name)
            found[key] = found.get(key, 0.0) + float(value)
    return found


@dataclass
class Sampler:
    """Every second: the backend's count and the spool's depth, in a thread of its own."""

    backend: int
    admin: int
    began: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def take(self) -> Sample:
        stats = _get_json(f"http://127.0.0.1:{self.backend}/_stats")
        spool = spool_metrics(self.admin)
        sample = Sample(time.monotonic() - self.began, int(stats["requests"]),
                        int(spool.get("gateway_spool_depth", 0)),
                        int(spool.get("gateway_spool_accepted_total", 0)))
        self.samples.append(sample)
        return sample

    def run(self) -> None:
        while not self._stop.wait(1.0):
            self.take()

    def start(self) -> threading.Thread:
        (thread := threading.Thread(target=self.run, daemon=True)).start()
        return thread

    def stop(self, thread: threading.Thread) -> None:
        self._stop.set()
        thread.join(15)


class Burst(Bench):
    """Reuses the bench's processes, certificates and token helpers."""

    def __init__(self, args: argparse.Namespace, fx: Fixtures, meta: dict[str, Any]) -> None:
        super().__init__(args, fx, meta, [])
        self.record = fx.workdir / "backend-record.jsonl"
        rng = random.Random(10)
        self.bodies = []
        for index in range(4):
            body = fx.workdir / f"burst-{index}.json"
            body.write_bytes(make_payload_bytes(args.users, rng))
            self.bodies.append(body)

    def start_backend(self) -> None:
        self.backend = self.procs.start(
            "backend", [sys.executable, "-m", "gateway", "backend", "--port", "0",
                        "--delay", str(self.args.delay), "--record", str(self.record)],
            ready="backend listening")
        self.backend_port = int(self.backend.line.rsplit(":", 1)[1])

    def capacity(self) -> tuple[float, int]:
        """What the capped backend takes (wrk, ``concurrency`` connections, straight to it),
        and the concurrency it saw; then its counters are reset."""
        base = f"http://127.0.0.1:{self.backend_port}"
        script = write_script(self.fx.workdir / "capacity.lua", method="POST",
                              target="/_capacity", headers={"Content-Type": "application/json"},
                              bodies=self.bodies)
        result = run_wrk(base + "/_capacity", script, connections=self.args.concurrency,
                         seconds=4)
        seen = int(_get_json(base + "/_stats")["max_in_flight"])
        _post_json(base + "/_control", {"reset": True})
        return result.rps, seen

    def config(self, delivery: str) -> Path:
        direct = self.fx.gateway_config(
            workers=1, backend_url=f"http://127.0.0.1:{self.backend_port}{ROUTE}")
        config = yaml.safe_load(direct.read_text())
        config["routes"][0]["delivery"] = delivery
        config["spool"] = {"path": str(self.fx.workdir / f"spool-{delivery}.db"),
                           "max_items": 10_000_000, "max_bytes": 1 << 40,
                           "concurrency": self.args.concurrency}
        path = self.fx.workdir / f"gateway-burst-{delivery}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def refused(self, path: Path) -> str | None:
        done = subprocess.run([sys.executable, "-m", "gateway", "check-config", "-c", str(path)],
                              capture_output=True, text=True, timeout=60, check=False)
        return None if done.returncode == 0 else (done.stderr or done.stdout).strip()

    def burst(self, delivery: str, capacity: float) -> Outcome:
        path = self.config(delivery)
        outcome = Outcome(delivery, capacity=capacity)
        why = self.refused(path)
        if why is not None:
            outcome.skipped = f"`delivery: {delivery}` is refused by this checkout: {why}"
            self._log(f"skipped {delivery}: {outcome.skipped}")
            return outcome
        gateway = self.procs.start(f"gateway-{delivery}", [sys.executable, "-m", "gateway",
                                                          "serve", "-c", str(path)],
                                   ready="gateway serving")
        try:
            self._run(gateway, outcome)
        finally:
            self.procs.stop(gateway)
        return outcome

    def _run(self, gateway: Started, outcome: Outcome) -> None:
        args = self.args
        ports = dict(p.split("=") for p in gateway.line[gateway.line.index("(") + 1:-1]
                     .split(", "))
        port, admin = int(ports["https"]), int(ports["admin"])
        token = self._gateway_token(port)
        script = write_script(
            self.fx.workdir / f"burst-{outcome.delivery}.lua", method="POST", target=ROUTE,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            bodies=self.bodies)
        _post_json(f"http://127.0.0.1:{self.backend_port}/_control", {"reset": True})
        sampler = Sampler(self.backend_port, admin)
        first = sampler.take()
        thread = sampler.start()
        cpu0 = gateway.cpu()
        began = sampler.began = time.monotonic()
        answered = 0
        url = f"https://127.0.0.1:{port}{ROUTE}"
        while answered < args.messages and time.monotonic() - began < args.max_seconds:
            t0 = time.monotonic() - began
            result = run_wrk(url, script, connections=args.connections, seconds=args.slice)
            answered += result.requests - result.non_2xx
            outcome.slices.append(Slice(t0, time.monotonic() - began, result.requests,
                                        result.non_2xx, result.socket_errors, result.p50_ms,
                                        result.p99_ms))
            self._log(f"  {outcome.delivery} {t0:6.1f}s: {result.rps:,.0f} answers/s, p99 "
                      f"{result.p99_ms:,.0f} ms, {result.non_2xx} non-2xx; {answered:,} so far")
        outcome.burst_seconds = time.monotonic() - began
        outcome.burst_cpu = gateway.cpu() - cpu0
        at_end = outcome.at_burst_end = sampler.take()
        outcome.answered_2xx = answered
        deadline = time.monotonic() + args.drain_seconds
        while at_end.depth > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            at_end = sampler.take()
        sampler.stop(thread)
        outcome.samples, outcome.first = list(sampler.samples), first
        outcome.drain_seconds = at_end.second - outcome.burst_seconds
        metrics = spool_metrics(admin)
        outcome.accepted = int(metrics.get("gateway_spool_accepted_total", 0))
        outcome.depth_left = int(metrics.get("gateway_spool_depth", 0))
        outcome.max_in_flight = int(
            _get_json(f"http://127.0.0.1:{self.backend_port}/_stats")["max_in_flight"])
        outcome.records, outcome.distinct, outcome.refused_records = delivered_records(
            self.record, ROUTE)
        self.record.write_bytes(b"")  # the next route's count starts at zero


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that everything started is stopped (a timeout's SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    command = "python " + shlex.join(["bench/burst.py", *(sys.argv[1:] if argv is None
                                                           else argv)])
    meta: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                            "command": command, "machine": machine(), "checks": [],
                            "skipped": []}
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="gateway-burst-") as tmp:
        bench = Burst(args, prepare(Path(tmp), quick=True), meta)
        try:
            bench.start_backend()
            capacity, seen = bench.capacity()
            meta["capacity"] = {"rps": capacity, "max_in_flight": seen}
            bench._log(f"capped backend: {capacity:,.0f} pushes/s with {seen} in flight")
            routes = ("spool", "fallback") if args.route == "both" else (args.route,)
            outcomes.extend(bench.burst(delivery, capacity) for delivery in routes)
        except KeyboardInterrupt:
            print("burst: interrupted; stopping everything it started", file=sys.stderr)
            return 130
        finally:
            bench.procs.stop_all()
    markdown = render(meta, args, outcomes)
    print(markdown)
    if not args.no_save:
        args.results.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
        (args.results / f"burst-{stamp}.md").write_text(markdown)
        (args.results / f"burst-{stamp}.json").write_text(json.dumps(
            {**meta, "outcomes": [o.as_dict() for o in outcomes]}, indent=2) + "\n")
        print(f"saved {args.results}/burst-{stamp}.md and .json")
    return 0 if all(o.passed for o in outcomes if o.skipped is None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
