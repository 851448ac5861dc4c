"""Binding the listeners, with errors that name the configuration key (docs/operations.md).

Workers share the public ports with SO_REUSEPORT, and the kernel spreads connections over
every socket of the same user bound with it, whoever opened it. So a second gateway with
workers on the same port would silently take part of the traffic. ``ensure_free`` is the
check made before any worker binds: a plain bind (SO_REUSEADDR, as every listener has, but
without SO_REUSEPORT) fails while anything listens on the address, and the gateway then
refuses to start instead of sharing. ``exit_code`` turns what stops a serving process at
start into its exit code, for the single process and the supervisor alike.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
from collections.abc import Callable

from gateway.config import ConfigError
from gateway.observe.accesslog import stdout_writer

__all__ = ["ListenError", "config_exit", "ensure_free", "exit_code", "listen_error"]


class ListenError(Exception):
    """A listener could not bind; the message names the key, the address and why."""


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_error(key: str, host: str, port: int, exc: OSError) -> ListenError:
    # uvloop's bind errors carry the errno but a text of their own; the C library's is
    # the one operators know.
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    if exc.errno == errno.EADDRINUSE:
        reason += " (another gateway or program listens there: stop it, or change " + key + ")"
    elif exc.errno == errno.EACCES:
        reason += " (ports below 1024 need privileges: use a higher port behind a proxy)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason += " (no interface of this machine has that address)"
    return ListenError(f"cannot listen on {key} ({_address(host, port)}): {reason}")


def ensure_free(key: str, host: str, port: int) -> None:
    """Raise ListenError when something already listens on ``host:port``; port 0 is free."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {key} ({_address(host, port)}): "
                          f"{exc.strerror}") from None
    for family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(family, kind, proto)
        try:
            # The options asyncio gives a listener, less SO_REUSEPORT: REUSEADDR lets a
            # restart bind past connections in TIME_WAIT, never past a live listener.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as exc:
            raise listen_error(key, host, port, exc) from None
        finally:
            sock.close()


def config_exit(exc: ConfigError) -> int:
    """Print every configuration error, one a line with its path; exit code 2."""
    for line in exc.errors:
        print(line, file=sys.stderr)
    return 2


def exit_code(run: Callable[[], int]) -> int:
    """``run()``, a serving process's main loop; its exit code: 1 when a listener cannot
    bind, 2 for a configuration that loaded but does not hold (a key that parsed but not
    into a key set). Stdout is flushed whatever happens."""
    try:
        return run()
    except ListenError as exc:
        print(f"gateway serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gateway serve: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        return config_exit(exc)
    finally:
        stdout_writer().flush()
