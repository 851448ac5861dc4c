"""``gateway serve``: the listeners, signals and graceful drain (SPEC §3, §5.4, §5.5).

One process serves three sites from two applications: the public TLS listener, the
optional plain-HTTP ``http_port`` listener (same application: the https stage refuses what
it receives unless a trusted proxy vouches for TLS), and the admin listener. SIGTERM and
SIGINT stop accepting, let in-flight requests finish (up to ``DRAIN_SECONDS``) and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from gateway.app import create_admin_app, create_app
from gateway.logs import configure_logging
from gateway.settings import ConfigError, Settings, load
from gateway.tls import server_context

__all__ = ["DRAIN_SECONDS", "RunningGateway", "serve", "start_gateway"]

DRAIN_SECONDS = 30.0
log = logging.getLogger("gateway")


@dataclass
class RunningGateway:
    """What ``start_gateway`` started; ``ports`` maps listener name to bound port."""

    runners: list[web.AppRunner]
    ports: dict[str, int] = field(default_factory=dict)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def _bound_port(site: web.TCPSite) -> int:
    # aiohttp keeps the listening server here; the only way to learn what port 0 became.
    server = site._server
    if server is None or not server.sockets:  # type: ignore[attr-defined]
        raise OSError("the listener did not bind")
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


async def start_gateway(settings: Settings) -> RunningGateway:
    """Start every listener of ``settings``; port 0 binds a free port (tests, demo)."""
    server = settings.server
    public = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=DRAIN_SECONDS)
    admin = web.AppRunner(create_admin_app(settings), access_log=None, shutdown_timeout=5.0)
    await public.setup()
    await admin.setup()
    running = RunningGateway([public, admin])
    try:
        tls_site = web.TCPSite(public, server.host, server.port,
                               ssl_context=server_context(server.tls), backlog=1024)
        await tls_site.start()
        running.ports["https"] = _bound_port(tls_site)
        if server.http_port is not None:
            http_site = web.TCPSite(public, server.host, server.http_port)
            await http_site.start()
            running.ports["http"] = _bound_port(http_site)
        admin_site = web.TCPSite(admin, server.admin.host, server.admin.port)
        await admin_site.start()
        running.ports["admin"] = _bound_port(admin_site)
    except BaseException:
        await running.stop()
        raise
    return running


async def _serve(settings: Settings, ready: Callable[[RunningGateway], None] | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = await start_gateway(settings)
    log.info("listening", extra={"reason_id": "listening", "ports": running.ports})
    if ready is not None:
        ready(running)
    await stop.wait()
    log.info("draining", extra={"reason_id": "draining"})
    await running.stop()
    log.info("stopped", extra={"reason_id": "stopped"})


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(config: Path) -> int:
    """Run until SIGTERM/SIGINT; exit 2 when the configuration is invalid."""
    try:
        settings = load(config)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    configure_logging(settings.logging)

    def announce(running: RunningGateway) -> None:
        ports = ", ".join(f"{name}={port}" for name, port in running.ports.items())
        print(f"gateway serving ({ports})", flush=True)

    _install_uvloop()
    try:
        asyncio.run(_serve(settings, announce))
    except OSError as exc:
        print(f"cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
