"""``gateway serve``: the listeners, signals and graceful drain (README.md, docs/security.md,
docs/operations.md).

One process serves the public TLS listener, the optional plain-HTTP ``http_port`` listener
(same application: the https stage refuses what it receives unless a trusted proxy vouches
for TLS) and the admin listener. SIGHUP reloads the configuration (``reload.py``); SIGTERM
and SIGINT stop accepting, let in-flight requests finish (up to ``DRAIN_SECONDS``) and exit 0.

With ``server.workers`` above one, ``supervisor.py`` runs that many copies of this process
as workers: each binds the public ports with SO_REUSEPORT (the kernel spreads connections
between them), serves no admin listener (the supervisor's sums them all) and writes its
metrics to the supervisor's directory once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from gateway import keys
from gateway.config import ConfigError, Settings
from gateway.oauth.keys import KeySet
from gateway.observe.accesslog import access_logger_class, stdout_writer
from gateway.observe.logs import configure_logging
from gateway.observe.metrics import Snapshot, write_snapshot
from gateway.serve.admin import admin_runner, create_admin_app
from gateway.serve.app import create_app
from gateway.serve.bind import config_exit, exit_code, listen_error
from gateway.serve.collector import settle_collector
from gateway.serve.control import validated
from gateway.serve.guards import GuardedAppRunner, GuardedTCPSite
from gateway.serve.malloc import HeapTrimmer
from gateway.serve.pidfile import PidFile, PidFileError
from gateway.serve.reload import reload_app
from gateway.spool.factory import backend_for

__all__ = ["DRAIN_SECONDS", "RunningGateway", "WorkerOptions", "serve", "start_gateway"]

DRAIN_SECONDS = 30.0
SNAPSHOT_SECONDS = 1.0
log = logging.getLogger("gateway")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What a supervisor tells its worker: the ports to share and where metrics go."""

    index: int
    https_port: int
    http_port: int | None
    metrics_dir: Path


class AppProbe:
    """``readiness.AdminProbe`` for a gateway serving its own admin listener."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def current(self) -> tuple[Settings, KeySet]:
        runtime = self._app[keys.RUNTIME].current
        return runtime.settings, runtime.keyset

    def snapshots(self) -> list[Snapshot]:
        return [self._app[keys.METRICS].snapshot()]

    def problems(self) -> list[str]:
        return []


@dataclass
class RunningGateway:
    """What ``start_gateway`` started; ``ports`` maps listener name to bound port."""

    app: web.Application
    runners: list[web.AppRunner]
    ports: dict[str, int] = field(default_factory=dict)

    async def reload(self) -> bool:
        return await reload_app(self.app)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        stdout_writer().flush()  # the last access lines, while stdout is still ours


def _bound_port(site: web.TCPSite) -> int:
    # aiohttp keeps the listening server here; the only way to learn what port 0 became.
    server = site._server
    if server is None or not server.sockets:  # type: ignore[attr-defined]
        raise OSError("the listener did not bind")
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


async def start_gateway(settings: Settings, worker: WorkerOptions | None = None) -> RunningGateway:
    """Start every listener of ``settings``; port 0 binds a free port (tests, demo)."""
    server = settings.server
    app = create_app(settings)
    metrics = app[keys.METRICS]
    metrics.loaded()
    if worker is None:  # one process serves alone; a supervisor counts its workers itself
        metrics.workers = 1
    access_log = access_logger_class(app[keys.METRICS], stdout_writer(),
                                     json=settings.logging.format == "json",
                                     route_label=app[keys.RUNTIME].labels)
    public = GuardedAppRunner(app, access_log=logging.getLogger("gateway.access"),
                              access_log_class=access_log,
                              shutdown_timeout=DRAIN_SECONDS)
    await public.setup()
    running = RunningGateway(app, [public])
    reuse = worker is not None

    async def bind(site: web.TCPSite, key: str, name: str, host: str, port: int) -> None:
        try:
            await site.start()
        except OSError as exc:
            raise listen_error(key, host, port, exc) from None
        running.ports[name] = _bound_port(site)

    try:
        https_port = worker.https_port if worker is not None else server.port
        tls_site = GuardedTCPSite(public, server.host, https_port,
                                  ssl_context=app[keys.TLS_CONTEXT], backlog=1024,
                                  reuse_port=reuse)
        await bind(tls_site, "server.port", "https", server.host, https_port)
        http_port = worker.http_port if worker is not None else server.http_port
        if http_port is not None:
            await bind(web.TCPSite(public, server.host, http_port, reuse_port=reuse),
                       "server.http_port", "http", server.host, http_port)
        if worker is None:
            admin = admin_runner(create_admin_app(AppProbe(app)))
            await admin.setup()
            running.runners.append(admin)
            await bind(web.TCPSite(admin, server.admin.host, server.admin.port),
                       "server.admin.port", "admin", server.admin.host, server.admin.port)
    except BaseException:
        await running.stop()
        raise
    return running


async def _export_metrics(running: RunningGateway, worker: WorkerOptions,
                          stop: asyncio.Event) -> None:
    """A worker's metrics for the supervisor, each second; stop if the supervisor is gone."""
    parent = os.getppid()
    path = worker.metrics_dir / f"worker-{os.getpid()}.json"
    metrics = running.app[keys.METRICS]
    while not stop.is_set():
        with contextlib.suppress(OSError):
            write_snapshot(path, metrics.snapshot())
        if os.getppid() != parent:
            log.error("supervisor gone; stopping", extra={"reason_id": "orphaned"})
            stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SNAPSHOT_SECONDS)


async def _serve(settings: Settings, ready: Callable[[RunningGateway], None] | None,
                 worker: WorkerOptions | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = await start_gateway(settings, worker)
    settle_collector()  # what start-up built lives as long as the process (collector.py)
    trimmer = HeapTrimmer()  # freed heap pages back to the kernel (malloc.py)
    trimmer.start()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hangup() -> None:
        task = loop.create_task(running.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    exporter = None
    if worker is not None:
        exporter = loop.create_task(_export_metrics(running, worker, stop))
    log.info("listening", extra={"reason_id": "listening", "ports": running.ports,
                                 "pid": os.getpid()})
    if ready is not None:
        ready(running)
    await stop.wait()
    log.info("draining", extra={"reason_id": "draining"})
    loop.remove_signal_handler(signal.SIGHUP)
    await running.stop()
    trimmer.stop()
    if exporter is not None:
        await exporter
        with contextlib.suppress(OSError):  # the final counts, after the drain
            write_snapshot(worker.metrics_dir / f"worker-{os.getpid()}.json",  # type: ignore[union-attr]
                           running.app[keys.METRICS].snapshot())
    log.info("stopped", extra={"reason_id": "stopped"})
    stdout_writer().flush()


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(config: Path, worker: WorkerOptions | None = None) -> int:
    """Run until SIGTERM/SIGINT; exit 2 when the configuration is invalid."""
    try:
        settings = validated(config)  # what check-config checks, no less
    except ConfigError as exc:
        return config_exit(exc)
    configure_logging(settings.logging)
    if worker is None:  # the supervisor or the single process says it once, not each worker
        for warning in settings.warnings:
            log.warning("configuration: %s", warning, extra={"reason_id": "config_warning"})
        for warning in backend_for(settings.spool).startup_warnings():
            log.warning("%s", warning, extra={"reason_id": "spool_durability"})
    _install_uvloop()
    lock = None
    if worker is None:  # the supervisor holds it for its workers
        lock = PidFile(settings.server.pid_file, config)
        try:
            lock.acquire()
        except PidFileError as exc:
            print(f"gateway serve: {exc}", file=sys.stderr)
            return 1
    try:
        return _run(settings, worker)
    finally:
        if lock is not None:
            lock.release()


def _run(settings: Settings, worker: WorkerOptions | None) -> int:
    if settings.server.workers > 1 and worker is None:
        from gateway.serve.supervisor import supervise

        return supervise(settings)

    def announce(running: RunningGateway) -> None:
        ports = ", ".join(f"{name}={port}" for name, port in running.ports.items())
        print(f"gateway serving ({ports})", flush=True)

    def main() -> int:
        asyncio.run(_serve(settings, announce if worker is None else None, worker))
        return 0

    return exit_code(main)
