"""The access log (docs/operations.md): one line per request on stdout, and the request metrics.

aiohttp calls ``AccessLog.log`` once the answer is sent, with the time it took, for every
request the listener parsed (refusals included). The line holds: time, request id, client
id, method, path, status, upstream status, duration in ms, bytes in and out, user agent;
JSON built by one ``msgspec.json.encode`` call (``logging.format: json``), or one text line.
Never a header value other than the User-Agent, never the query string (RFC 6750 §2.3
allows a token there): no token, credential or secret can reach this log. The path and the
User-Agent are the caller's: every non-printing character in them (a decoded ``%0A``, CR,
an ANSI escape, a bidi override) is written as an escape (``escape_controls``), so no
caller can end a line early, forge one or repaint a terminal, in either format.

``LineWriter`` batches lines and writes whole lines with ``os.write``, at most ``PIPE_BUF``
bytes at a time, so that workers sharing one stdout pipe never interleave inside a line;
lines written in the same 50 ms leave in one system call. Application log records go
through the same writer (``logs.py``), in order with the access lines.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from gateway import keys
from gateway.observe.metrics import Metrics
from gateway.observe.trace import TraceContext

__all__ = ["LineWriter", "Trace", "access_logger_class", "escape_controls", "iso_time",
           "stdout_writer"]

_FLUSH_DELAY = 0.05
_FLUSH_BYTES = 16384
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_FIELD = 256
_encode = msgspec.json.Encoder().encode


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else (
        f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def escape_controls(text: str) -> str:
    """``text`` with each non-printing character (``str.isprintable``: C0 and C1 controls,
    DEL, line and paragraph separators, format characters, lone surrogates) written as
    ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``, and ``\\`` as ``\\\\``, so an escape
    in a log line always means the gateway wrote it."""
    if text.isprintable() and "\\" not in text:
        return text  # the common case: one C-level scan, no copy
    return "".join(map(_escape, text))


class LineWriter:
    """Whole lines to a file descriptor, batched; safe to call from any thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lines: list[bytes] = []
        self._size = 0
        self._scheduled = False
        self._lock = threading.Lock()

    def write(self, line: bytes) -> None:
        """Queue one line (ending in a newline); it leaves within ``_FLUSH_DELAY``."""
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            if self._size < _FLUSH_BYTES:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = None  # no loop in this thread (start-up, exit): write now
                if loop is not None:
                    if not self._scheduled:
                        loop.call_later(_FLUSH_DELAY, self.flush)
                        self._scheduled = True
                    return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines, self._size, self._scheduled = self._lines, [], 0, False
            chunk = bytearray()
            for line in lines:
                if chunk and len(chunk) + len(line) > _PIPE_BUF:
                    self._write(bytes(chunk))
                    chunk.clear()
                chunk += line
            if chunk:
                self._write(bytes(chunk))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            pass  # stdout closed (a pipe whose reader left): nothing sensible to do


_stdout: LineWriter | None = None


def stdout_writer() -> LineWriter:
    """The process's one writer to stdout (fd 1)."""
    global _stdout
    if _stdout is None:
        _stdout = LineWriter(1)
    return _stdout


_second = -1
_second_text = ""


def iso_time(now: float) -> str:
    """RFC 3339 UTC with milliseconds; the seconds part is formatted once per second."""
    global _second, _second_text
    whole = int(now)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second_text}.{int((now - whole) * 1000):03d}Z"


class Trace:
    """What the access log reports of one request, filled in as it travels."""

    __slots__ = ("client_id", "context", "request_id", "started", "upstream_status")

    def __init__(self, started: float, request_id: str, context: TraceContext) -> None:
        self.started = started  # time.perf_counter(): uvloop's clock counts whole ms
        self.request_id = request_id
        self.context = context  # W3C trace context: its id here, its fields to the backend
        self.client_id: str | None = None
        self.upstream_status: int | None = None


class _Line(msgspec.Struct, omit_defaults=False):
    # A Struct encodes faster than a dict; the field order is the line's.
    time: str
    logger: str
    request_id: str | None
    trace_id: str | None
    client_id: str | None
    method: str
    path: str
    status: int
    upstream_status: int | None
    duration_ms: float
    bytes_in: int
    bytes_out: int
    user_agent: str
    pid: int  # which worker served it (server.workers > 1)


def access_logger_class(metrics: Metrics, writer: LineWriter, *, json: bool,
                        route_label: dict[str, str]) -> type[AbstractAccessLogger]:
    """An aiohttp access-logger class bound to this app's metrics and writer.

    ``route_label`` maps a path to its metrics label; the app keeps it current across
    reloads (any other path is ``unmatched``, so 404 scans cannot add series)."""

    class AccessLog(AbstractAccessLogger):
        def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
            trace = request.get(keys.TRACE)
            if trace is not None:
                time = _perf_counter() - trace.started
            path = request.path
            method = request.method
            status = response.status
            metrics.observe_request(route_label.get(path, "unmatched"),
                                    method if method in _METHODS else "OTHER", status, time)
            line = _Line(
                iso_time(_now()), "gateway.access",
                trace.request_id if trace is not None else None,
                trace.context.trace_id if trace is not None else None,
                trace.client_id if trace is not None else None,
                method, escape_controls(path[:_MAX_FIELD]), status,
                trace.upstream_status if trace is not None else None,
                round(time * 1000, 3), request.content_length or 0,
                response.body_length, request.headers.get("User-Agent", "")[:_MAX_FIELD], _PID)
            if json:
                line.user_agent = escape_controls(line.user_agent)
                writer.write(_encode(line) + b"\n")
            else:
                writer.write((
                    f"{line.time} access {line.request_id} trace={line.trace_id or '-'} "
                    f"{line.client_id or '-'} {method} "
                    f"{line.path} {status} upstream={line.upstream_status or '-'} "
                    f"{line.duration_ms}ms in={line.bytes_in} out={line.bytes_out} "
                    f"{line.user_agent!r}\n").encode("utf-8", "replace"))

    return AccessLog


_now = time.time
_PID = os.getpid()
_perf_counter = time.perf_counter
