"""The public TLS listener's accept loop (docs/security.md, "Limits"; docs/operations.md,
"Open files"): what happens between a TCP connection and a TLS one.

uvloop's own TLS server runs each handshake before any protocol of the gateway sees the
connection, so sockets that never finish one counted against no cap, and when ``accept``
then failed for lack of descriptors (EMFILE) uvloop closed the listening socket for good,
without a word: an outside attack run held 1,000 half-open sockets from one address under
a 1,024 open-file limit, and every push from everyone else failed. Here the gateway
accepts itself, so every connection is admitted *before* its handshake:

* a handshake in progress is an entry of the listener's ``Registry``: it counts against
  ``server.max_connections_per_address`` and the process's cap (``ConnectionLimits``,
  below the open-file limit), and past either the socket is closed at once;
* it has ``handshake_seconds`` to finish; one pending for over ``STALE_SECONDS`` is "idle"
  and is the first closed to make room for a new connection;
* once the handshake is done the request handler takes the slot over (``guards.py``);
* ``accept`` failing with EMFILE or ENFILE is logged (at most once per ``LOG_SECONDS``,
  with the count since) and retried after ``RETRY_SECONDS``; established connections are
  served meanwhile and the listener stays open.

Costs: one Python ``accept`` call and a registry entry per connection, microseconds
against the handshake's milliseconds; nothing per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.serve.connections import (
    DEFAULT_LIMITS,
    ConnectionLimits,
    Registry,
    warn_if_few_files,
)

__all__ = ["RETRY_SECONDS", "STALE_SECONDS", "Acceptor", "GuardedTCPSite", "listening_sockets"]

log = logging.getLogger("gateway.guards")

ACCEPTS_PER_WAKE = 128  # then other callbacks run: a connect flood cannot starve requests
RETRY_SECONDS = 0.1
STALE_SECONDS = 1.0  # a real client's handshake takes milliseconds
LOG_SECONDS = 10.0
_OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _Quiet:
    """A log line at most once per ``LOG_SECONDS``, with the count of those held back."""

    def __init__(self, loop: asyncio.AbstractEventLoop, level: int, message: str,
                 reason_id: str) -> None:
        self._loop, self._level, self._message, self._reason = loop, level, message, reason_id
        self._next = 0.0
        self._held = 0

    def __call__(self) -> None:
        now = self._loop.time()
        if now < self._next:
            self._held += 1
            return
        log.log(self._level, self._message, extra={"reason_id": self._reason,
                                                   "since_last": self._held})
        self._next, self._held = now + LOG_SECONDS, 0


class _Handshake:
    """A connection whose TLS handshake is in progress: a ``Registry`` entry."""

    __slots__ = ("conn", "started", "task")

    def __init__(self, conn: socket.socket, started: float) -> None:
        self.conn = conn
        self.started = started
        self.task: asyncio.Task[Any] | None = None

    def is_idle(self) -> bool:
        return asyncio.get_running_loop().time() - self.started > STALE_SECONDS

    def force_close(self) -> None:
        with contextlib.suppress(OSError):
            if self.task is None:  # not handed to the loop yet
                self.conn.close()
            else:
                # The loop's transport owns the descriptor now: end the TCP connection
                # under it, and the handshake fails at once (EOF) and closes it.
                self.conn.shutdown(socket.SHUT_RDWR)


class Acceptor:
    """Accepts on ``sockets``, admits each connection to ``registry``, runs its handshake
    with ``ssl_context`` and hands it to ``factory``'s protocol. Quacks like the
    ``asyncio.Server`` that ``web.BaseSite`` keeps (``close``, ``sockets``)."""

    def __init__(self, sockets: list[socket.socket], factory: Callable[[], asyncio.BaseProtocol],
                 ssl_context: ssl.SSLContext | None, registry: Registry) -> None:
        self.sockets = sockets
        self._factory = factory
        self._ssl = ssl_context
        self._registry = registry
        self._limits: ConnectionLimits = registry.limits
        self._loop = asyncio.get_running_loop()
        self._pending: set[_Handshake] = set()
        self._closed = False
        self._out_of_files = _Quiet(self._loop, logging.ERROR,
                                    "accept failed: out of file descriptors; retrying",
                                    "accept_out_of_files")
        self._refused = _Quiet(self._loop, logging.WARNING,
                               "connection refused before its handshake: too many connections",
                               "max_connections")
        for sock in sockets:
            sock.setblocking(False)
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                conn, peer = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _OUT_OF_FILES:
                    raise
                self._out_of_files()
                # SECURITY: the listener stays; new connections wait in the backlog while
                # established ones are served and may free descriptors.
                self._loop.remove_reader(listening.fileno())
                self._loop.call_later(RETRY_SECONDS, self._resume, listening)
                return
            self._admit(conn, peer)

    def _resume(self, listening: socket.socket) -> None:
        if not self._closed:
            self._loop.add_reader(listening.fileno(), self._accept, listening)

    def _admit(self, conn: socket.socket, peer: Any) -> None:
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        pending = _Handshake(conn, self._loop.time())
        if not self._registry.admit(pending, address):
            self._refused()
            conn.close()
            return
        self._pending.add(pending)
        pending.task = self._loop.create_task(self._handshake(pending))

    async def _handshake(self, pending: _Handshake) -> None:
        protocol: asyncio.BaseProtocol | None = None

        def made() -> asyncio.BaseProtocol:
            nonlocal protocol
            protocol = self._factory()
            # The handler releases the handshake's slot as it takes its own (guards.py).
            handler = getattr(protocol, "handler", protocol)
            if hasattr(handler, "pending"):
                handler.pending = pending
            return protocol

        try:
            await self._loop.connect_accepted_socket(
                made, pending.conn, ssl=self._ssl,
                ssl_handshake_timeout=self._limits.handshake_seconds if self._ssl else None)
        except (OSError, ssl.SSLError, TimeoutError):
            pass  # dropped, timed out, not TLS, or closed for room: the transport is closed
        finally:
            self._registry.release(pending)
            self._pending.discard(pending)

    def close(self) -> None:
        """Stop accepting; close the listening sockets and every handshake in progress."""
        if self._closed:
            return
        self._closed = True
        for sock in self.sockets:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())
            sock.close()
        for pending in list(self._pending):
            pending.force_close()

    async def wait_closed(self) -> None:
        return None


def listening_sockets(host: str, port: int, *, backlog: int, reuse_address: bool | None,
                      reuse_port: bool | None) -> list[socket.socket]:
    """Bound, listening sockets for ``host`` and ``port``, as ``loop.create_server`` makes
    them (every address ``host`` resolves to; IPv6 ones IPv6-only)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(
                (i[0], i[1], i[2], i[3], i[4]) for i in infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if reuse_address is not False:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            sock.listen(backlog)
            port = sock.getsockname()[1]  # port 0: every address on the one port chosen
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class GuardedTCPSite(web.TCPSite):
    """``web.TCPSite`` whose TLS connections are accepted by ``Acceptor``: each
    counts against the runner's connection caps from its handshake on, and each handshake
    is bounded to ``handshake_seconds`` (asyncio's default is 60 s)."""

    __slots__ = ()

    async def start(self) -> None:
        # TCPSite.start without its create_server call, which cannot see a handshake.
        await web.BaseSite.start(self)
        runner = self._runner
        # A guards.GuardedAppRunner has its own limits; any other runner the defaults.
        limits = getattr(runner, "limits", DEFAULT_LIMITS)
        server = runner.server
        assert server is not None
        registry = getattr(server, "registry", None)
        warn_if_few_files(limits)
        if self._ssl_context is None or not isinstance(registry, Registry):
            plain = await asyncio.get_running_loop().create_server(
                server, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
                reuse_address=self._reuse_address, reuse_port=self._reuse_port,
                ssl_handshake_timeout=limits.handshake_seconds if self._ssl_context else None)
            self._server, sockets = plain, list(plain.sockets)
        else:
            sockets = listening_sockets(self._host or "", self._port, backlog=self._backlog,
                                        reuse_address=self._reuse_address,
                                        reuse_port=self._reuse_port)
            self._server = Acceptor(  # type: ignore[assignment]  # close() and sockets
                sockets, server, self._ssl_context, registry)
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
