"""The sample legacy backend (``gateway backend``, README.md): what the gateway protects.

A plain-HTTP aiohttp app on loopback that accepts segment pushes (RFC 9110 POST, GET, PUT,
... on any path), counts them (requests, bytes, users and segments: occurrences of the keys
``"AAM_UUID"`` and ``"Segment_ID"``, counted without parsing), optionally appends each one to
a JSON-lines file, waits ``delay`` seconds and answers ``status`` with
``{"received": ..., "count": N, "users": U, "segments": S}``: the requests so far, and this
push's users and segments.

Two paths belong to the tool, not to the legacy API:

* ``GET /_stats``: the counters, the current status and delay, the pushes in flight now and
  the most ever in flight at once (``max_in_flight``: with a fixed delay, what the caller's
  concurrency really was, so a benchmark knows the cap it set), and the last push's method,
  path and headers (so tests and the demo can see exactly what the gateway forwarded);
* ``POST /_control``: ``{"status": 500, "delay": 0.5, "reset": true}`` changes the answer at
  run time, so fault tests and the demo make the backend fail without restarting it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from aiohttp import web

__all__ = ["create_backend_app", "run_backend"]

# The gateway accepts bodies up to server.max_body_bytes (1 MiB by default, up to 1 GiB);
# the backend must never be the one refusing a large batch.
_MAX_BODY = 256 * 1024 * 1024
_USER_MARKER = b'"AAM_UUID"'
_SEGMENT_MARKER = b'"Segment_ID"'


class _Backend:
    """The counters and the adjustable answer; its methods are the app's handlers."""

    def __init__(self, status: int, delay: float, record: Path | None) -> None:
        self.status = _check_status(status)
        self.delay = _check_delay(delay)
        self.record = record
        self.file: IO[str] | None = None
        self.in_flight = 0  # not reset: pushes in flight at a reset still end
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.users = 0
        self.segments = 0
        self.max_in_flight = self.in_flight
        self.last: dict[str, Any] | None = None

    async def push(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._push(request)
        finally:
            self.in_flight -= 1

    async def _push(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        count = self.requests
        self.bytes += len(body)
        users, segments = body.count(_USER_MARKER), body.count(_SEGMENT_MARKER)
        self.users += users
        self.segments += segments
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            # RFC 9110 §5.3: repeated fields combine into one comma-separated value.
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.last = {"method": request.method, "path": request.path,
                     "query": request.query_string, "headers": headers,
                     "body_bytes": len(body)}
        status, delay = self.status, self.delay
        if self.file is not None:
            entry = {**self.last, "status": status, "body": body.decode("utf-8", "replace")}
            # A buffered append of one line; flushed so a reader sees every push at once.
            self.file.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self.file.flush()
        # Recorded before the delay: a push the gateway gave up on still reached the backend.
        if delay > 0:
            await asyncio.sleep(delay)
        if status < 200 or status in (204, 304):
            return web.Response(status=status)  # RFC 9110 §15.3.5: these carry no content
        return web.json_response({"received": 200 <= status < 300, "count": count,
                                  "users": users, "segments": segments}, status=status)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({
            "requests": self.requests, "bytes": self.bytes, "users": self.users,
            "segments": self.segments,
            "status": self.status, "delay": self.delay, "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight, "last": self.last,
        })

    async def control(self, request: web.Request) -> web.Response:
        try:
            change = await request.json()
            if not isinstance(change, dict):
                raise ValueError("expected a JSON object")
            unknown = set(change) - {"status", "delay", "reset"}
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
            status = _check_status(change.get("status", self.status))
            delay = _check_delay(change.get("delay", self.delay))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return web.json_response({"error": str(exc)}, status=400)
        self.status, self.delay = status, delay
        if change.get("reset"):
            self.reset()
        return web.json_response({"status": self.status, "delay": self.delay})

    async def record_file(self, app: web.Application) -> AsyncIterator[None]:
        if self.record is not None:
            self.file = await asyncio.to_thread(self.record.open, "a", encoding="utf-8")
        yield
        if self.file is not None:
            self.file.close()
            self.file = None


def _check_status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError("status must be an integer from 100 to 599")
    return value


def _check_delay(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise ValueError("delay must be a number of seconds from 0 to 3600")
    return float(value)


def create_backend_app(status: int = 200, delay: float = 0.0,
                       record: Path | None = None) -> web.Application:
    """The sample backend as an application (tests run it with their own runner)."""
    backend = _Backend(status, delay, record)
    app = web.Application(client_max_size=_MAX_BODY)
    app.cleanup_ctx.append(backend.record_file)
    # Registered before the catch-all, which would otherwise count them as pushes.
    app.router.add_get("/_stats", backend.stats)
    app.router.add_post("/_control", backend.control)
    app.router.add_route("*", "/{tail:.*}", backend.push)
    return app


async def _serve(host: str, port: int, app: web.Application) -> int:
    # Handlers first: whoever reads the "listening" line may signal at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            print(f"backend: cannot listen on {host}:{port}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        bound = runner.addresses[0][1]  # the real port when asked for port 0
        shown = f"[{host}]" if ":" in host else host
        print(f"backend listening on http://{shown}:{bound}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def run_backend(host: str = "127.0.0.1", port: int = 8081, status: int = 200,
                delay: float = 0.0, record: Path | None = None) -> int:
    """Serve the sample backend until SIGINT or SIGTERM; the process's exit code."""
    try:
        app = create_backend_app(status, delay, record)
    except ValueError as exc:
        print(f"backend: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop  # optional: the event loop in C, absent on Windows
        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_serve(host, port, app))
