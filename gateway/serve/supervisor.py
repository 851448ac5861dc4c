"""``server.workers`` > 1: a supervisor and N worker processes on the same ports
(docs/configuration.md).

Each worker is ``gateway serve`` told its index, the ports and a metrics directory; it binds
the public ports with SO_REUSEPORT, so the kernel spreads connections over the workers.
Port 0 (tests, the demo) is resolved here first: the supervisor binds a SO_REUSEPORT socket
without listening on it (it takes no connections) and hands the port to every worker.

The supervisor serves the admin listener: ``/metrics`` sums the snapshots the workers write
each second (a dead worker's counters are kept, its gauges dropped), ``/readyz`` also
requires every worker to run. It restarts a worker that dies (with a back-off when one dies
young), forwards SIGHUP once the new file validates (so an invalid file is reported once,
not by every worker) and, on SIGTERM or SIGINT, forwards SIGTERM, waits for the workers to
drain and exits 0. The workers' stdout is the supervisor's: whole-line writes keep lines
intact (``accesslog.LineWriter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from gateway.config import ConfigError, Settings
from gateway.oauth.keys import KeySet
from gateway.observe.metrics import Metrics, Snapshot, read_snapshots, without_gauges
from gateway.serve.admin import admin_runner, create_admin_app
from gateway.serve.bind import config_exit, ensure_free, exit_code, listen_error
from gateway.serve.reload import log_refusal, prepare_reload

__all__ = ["Supervisor", "supervise"]

log = logging.getLogger("gateway.supervisor")

_READY_SECONDS = 30.0
_YOUNG_SECONDS = 5.0
_MAX_BACKOFF = 30.0
_DRAIN_SECONDS = 35.0  # the workers' 30 s drain, and their exit


def _reserve(host: str, port: int) -> tuple[socket.socket | None, int]:
    """A fixed port as it is; port 0 becomes a free port all workers can share."""
    if port != 0:
        return None, port
    family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock, int(sock.getsockname()[1])


class Supervisor:
    """Starts, watches and stops the workers; ``readiness.AdminProbe`` for its listener."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keyset = KeySet.from_settings(settings.tokens)
        self.metrics = Metrics()
        self.metrics.loaded()
        self.directory = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self._dead: list[Snapshot] = []
        self._stopping = False
        self._held: list[socket.socket] = []
        self.ports: dict[str, int] = {}

    # -- readiness.AdminProbe -----------------------------------------------------------
    def current(self) -> tuple[Settings, KeySet]:
        return self.settings, self.keyset

    def snapshots(self) -> list[Snapshot]:
        self.metrics.workers = self._alive()
        return [*read_snapshots(self.directory), *self._dead, self.metrics.snapshot()]

    def problems(self) -> list[str]:
        alive, wanted = self._alive(), self.settings.server.workers
        return [] if alive == wanted else [f"workers: {alive} of {wanted} running"]

    def _alive(self) -> int:
        return sum(1 for p in self.workers.values() if p.returncode is None)

    # -- workers ------------------------------------------------------------------------
    async def _spawn(self, index: int) -> bool:
        """Start worker ``index``; True once it listens (its first snapshot exists)."""
        http = self.ports.get("http")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "-c", str(self.settings.source),
            "--worker-index", str(index), "--metrics-dir", str(self.directory),
            "--worker-ports", f"{self.ports['https']}:{'' if http is None else http}",
            stdin=asyncio.subprocess.DEVNULL)
        self.workers[index] = process
        snapshot = self.directory / f"worker-{process.pid}.json"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_SECONDS
        while loop.time() < deadline and process.returncode is None:
            if snapshot.exists():
                log.info("worker started", extra={"reason_id": "worker_started",
                                                  "worker": index, "pid": process.pid})
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.05)
        return False

    def _bury(self, pid: int) -> None:
        """Keep a dead worker's counters; its in-flight gauge goes with it."""
        path = self.directory / f"worker-{pid}.json"
        for snapshot in read_snapshots(self.directory, path.name):
            self._dead.append(without_gauges(snapshot))
        path.unlink(missing_ok=True)

    async def _watch(self, index: int) -> None:
        backoff = 0.1
        while not self._stopping:
            process = self.workers[index]
            started = asyncio.get_running_loop().time()
            code = await process.wait()
            if self._stopping:
                return
            self._bury(process.pid)
            self.metrics.count("gateway_worker_restarts_total")
            young = asyncio.get_running_loop().time() - started < _YOUNG_SECONDS
            backoff = min(backoff * 2, _MAX_BACKOFF) if young else 0.1
            log.error("worker died; replacing it", extra={
                "reason_id": "worker_died", "worker": index, "pid": process.pid,
                "exit_code": code, "restart_in_seconds": backoff})
            await asyncio.sleep(backoff)
            if not self._stopping:
                await self._spawn(index)

    def _reload(self) -> None:
        try:
            settings, _ = prepare_reload(self.settings)
            keyset = KeySet.from_settings(settings.tokens)
        except Exception as exc:  # any failure is a refused reload, never a dead handler
            log_refusal(exc)
            self.metrics.count("gateway_config_reloads_total", "error")
            return
        self.settings, self.keyset = settings, keyset
        logging.getLogger().setLevel(settings.logging.level.upper())
        for process in self.workers.values():
            if process.returncode is None:
                process.send_signal(signal.SIGHUP)

    async def _stop_workers(self) -> None:
        self._stopping = True
        running = [p for p in self.workers.values() if p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                await asyncio.gather(*(p.wait() for p in running))
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    log.error("worker did not drain in time; killing it",
                              extra={"reason_id": "worker_killed", "pid": process.pid})
                    process.kill()
            await asyncio.gather(*(p.wait() for p in running))

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        server = self.settings.server
        admin = admin_runner(create_admin_app(self))
        watchers: list[asyncio.Task[None]] = []
        try:
            for name, key, port in (("https", "server.port", server.port),
                                    ("http", "server.http_port", server.http_port)):
                if port is not None:
                    # Before any worker binds with SO_REUSEPORT, which would share the
                    # port with another gateway's workers instead of failing (bind.py).
                    ensure_free(key, server.host, port)
                    held, self.ports[name] = _reserve(server.host, port)
                    self._held += [held] if held is not None else []
            await admin.setup()
            site = web.TCPSite(admin, server.admin.host, server.admin.port)
            try:
                await site.start()
            except OSError as exc:
                raise listen_error("server.admin.port", server.admin.host, server.admin.port,
                                   exc) from None
            self.ports["admin"] = admin.addresses[0][1]
            started = await asyncio.gather(*(self._spawn(i) for i in range(server.workers)))
            if not all(started):
                log.error("a worker did not start", extra={"reason_id": "worker_failed"})
                return 1
            watchers = [loop.create_task(self._watch(i)) for i in range(server.workers)]
            ports = ", ".join(f"{name}={port}" for name, port in self.ports.items())
            log.info("supervising", extra={"reason_id": "listening", "ports": self.ports,
                                           "workers": server.workers})
            print(f"gateway serving ({ports}) with {server.workers} workers", flush=True)
            await stop.wait()
            log.info("draining", extra={"reason_id": "draining"})
        finally:
            await self._stop_workers()
            for task in watchers:
                task.cancel()
            await admin.cleanup()
            for held in self._held:
                held.close()
            shutil.rmtree(self.directory, ignore_errors=True)
        log.info("stopped", extra={"reason_id": "stopped"})
        return 0


def supervise(settings: Settings) -> int:
    """Run the supervisor until SIGTERM/SIGINT; the process's exit code."""
    try:
        supervisor = Supervisor(settings)
    except ConfigError as exc:
        return config_exit(exc)
    return exit_code(lambda: asyncio.run(supervisor.run()))
