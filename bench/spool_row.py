"""The spool-mode rows (docs/operations.md): the gateway with one worker, its route ``delivery:
spool``, storing in the SQLite file (``gateway-spool``, row 4b) or in Redis Streams
(``gateway-spool-redis``, row 4d: ``spool.backend: redis`` on a ``redis-server`` with
``appendonly yes`` and ``appendfsync always``, the setting that loses nothing without
replicas, docs/deploy.md).

Measured like row 4 (same payloads, same wrk, same checks), so the rows read side by side:
what a push costs when it is stored and answered at once instead of forwarded. The
backend's counter is read after the spool has drained (the backlog of the warm-up before
the clock starts, the run's own after it), so ``backend saw`` counts every delivery; the
notes give how long the drain took, its CPU, how many requests shared a commit (fsync) of
the SQLite file, and Redis's own CPU per request (not in the row's CPU column, which is the
gateway's).
"""

from __future__ import annotations

import re
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from fixtures import PayloadSet
from procs import Started, free_port, wait_port
from report import Row
from rows import Bench

__all__ = ["SpoolBench"]

KEY = "gateway-spool"  # its label is in rows.ROWS, next to row 4
REDIS_KEY = "gateway-spool-redis"
_DRAIN_SECONDS = 120.0


class SpoolBench(Bench):
    """``Bench`` with the spool row."""

    _admin = 0
    _redis: Started | None = None

    def _row_gateway_spool(self, key: str) -> None:
        self._spool_row(key, {"path": str(self.fx.workdir / "spool.db")})

    def _row_gateway_spool_redis(self, key: str) -> None:
        if shutil.which("redis-server") is None:
            self._skip(key, "redis-server not installed (apt-get install redis-server)")
            return
        port = free_port()
        directory = self.fx.workdir / "redis-spool"
        directory.mkdir(exist_ok=True)
        self._redis = self.procs.start("redis-spool", [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(directory)])
        wait_port(port)
        self._spool_row(key, {"backend": "redis", "url": f"redis://127.0.0.1:{port}/0",
                              "path": str(self.fx.workdir / "spool-fallback.db")})

    def _spool_row(self, key: str, spool: dict[str, str]) -> None:
        direct = self.fx.gateway_config(
            workers=1, backend_url=f"http://127.0.0.1:{self.backend_port}/segments/aam")
        config = yaml.safe_load(direct.read_text())
        config["routes"][0]["delivery"] = "spool"
        config["spool"] = spool
        config["server"]["pid_file"] = f"var/{key}.pid"
        path = self.fx.workdir / f"{key}.yaml"
        path.write_text(yaml.safe_dump(config))
        proxy = self.procs.start(key, [sys.executable, "-m", "gateway", "serve", "-c", str(path)],
                                 ready="gateway serving")
        ports = dict(p.split("=") for p in proxy.line[proxy.line.index("(") + 1:-1].split(", "))
        self._admin = int(ports["admin"])
        port = int(ports["https"])
        self._measure_proxy(key, proxy, port, self._gateway_token(port), verifies=True)

    def _metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self._admin}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        return {re.sub(r"\{.*\}", "", name): float(value) for name, value in
                (line.rsplit(" ", 1) for line in text.splitlines()
                 if line.startswith("gateway_spool_"))}

    def _drain(self) -> float:
        """Wait until nothing waits in the spool; the seconds it took."""
        started = time.monotonic()
        while self._metrics().get("gateway_spool_depth", 0) > 0:
            if time.monotonic() - started > _DRAIN_SECONDS:
                raise RuntimeError(f"{KEY}: the spool did not drain in {_DRAIN_SECONDS:g} s")
            time.sleep(0.1)
        return time.monotonic() - started

    def _measure(self, key: str, payload: str, url: str, script: Path, proxy: Started | None,
                 *, token: str = "", payloads: PayloadSet | None = None) -> Row:
        if key not in (KEY, REDIS_KEY):
            return super()._measure(key, payload, url, script, proxy, token=token,
                                    payloads=payloads)
        assert proxy is not None
        self._drain()  # the warm-up's backlog is not this run's
        before, counts = self._backend_count(), self._metrics()
        redis_cpu = self._redis.cpu() if self._redis is not None else 0.0
        row = super()._measure(key, payload, url, script, proxy, token=token, payloads=payloads)
        cpu = proxy.cpu()
        run_redis_cpu = (self._redis.cpu() if self._redis is not None else 0.0) - redis_cpu
        seconds = self._drain()
        row.backend_seen = self._backend_count() - before
        after = self._metrics()
        accepted = after["gateway_spool_accepted_total"] - counts["gateway_spool_accepted_total"]
        drain_ms = (proxy.cpu() - cpu) * 1000 / max(1, row.requests)
        note = f"drained {seconds:.1f} s after the run (+{drain_ms:.2f} ms CPU per request); "
        if key == KEY:
            commits = (after["gateway_spool_commits_total"]
                       - counts["gateway_spool_commits_total"])
            note += (f"{accepted:,.0f} stored in {commits:,.0f} commits, the deliverer's "
                     f"included: {accepted / max(1.0, commits):.1f} per fsync")
        else:
            note += (f"{accepted:,.0f} stored in the stream; redis-server (AOF, fsync "
                     f"always) {run_redis_cpu * 1e6 / max(1, row.requests):.0f} µs CPU per "
                     "request during the run")
        row.notes.append(note)
        return row
