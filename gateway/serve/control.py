"""``gateway check-config``, ``gateway reload`` and ``gateway stop`` (README.md,
docs/operations.md).

``check-config`` runs every check ``serve`` makes before it binds: the loader, then the
key set and the TLS context built from the files, so a file it accepts starts. ``reload``
and ``stop`` signal the gateway that holds the configuration's ``server.pid_file`` (the
process you started: the supervisor when there are workers), never a process found by
name, which on a shared host may be another user's gateway.
"""

from __future__ import annotations

import os
import signal
import ssl
import sys
import time
from pathlib import Path

from gateway.config import ConfigError, Settings, load
from gateway.config.listener import pid_file_of
from gateway.oauth.keys import KeySet
from gateway.serve.pidfile import PidFileError, running_pid
from gateway.serve.tls import server_context

__all__ = ["check_config", "reload_gateway", "stop_gateway", "validated"]

_POLL_SECONDS = 0.1


def validated(config: Path) -> Settings:
    """The settings ``serve`` would run with; raises ConfigError naming every problem."""
    settings = load(config)
    KeySet.from_settings(settings.tokens)
    try:
        server_context(settings.server.tls)
    except (ssl.SSLError, OSError) as exc:
        # Each file parsed alone; together they must be one certificate and its key.
        raise ConfigError([f"server.tls: the certificate chain and key do not load "
                           f"together ({exc.__class__.__name__}): is key_file the key of "
                           f"cert_file?"]) from None
    return settings


def _report(config: Path, exc: ConfigError) -> int:
    print(f"{config}: {len(exc.errors)} error(s)", file=sys.stderr)
    for line in exc.errors:
        print(f"  {line}", file=sys.stderr)
    return 2


def check_config(config: Path) -> int:
    """Exit 0 and a summary (warnings on stderr), or 2 and every error with its path."""
    try:
        settings = validated(config)
    except ConfigError as exc:
        return _report(config, exc)
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(settings.summary())
    return 0


def _running(config: Path, pid_file: Path) -> int | None:
    try:
        pid = running_pid(pid_file)
    except PidFileError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return None
    if pid is None:
        print(f"gateway: no gateway is running for {config} (server.pid_file {pid_file} is "
              f"not held); start one with `gateway serve -c {config}`", file=sys.stderr)
    return pid


def reload_gateway(config: Path) -> int:
    """check-config, then SIGHUP to the running gateway. 0 sent, 2 invalid, 1 none runs."""
    try:
        settings = validated(config)
    except ConfigError as exc:
        _report(config, exc)
        print("gateway reload: not sent; the running configuration stays", file=sys.stderr)
        return 2
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    pid = _running(config, settings.server.pid_file)
    if pid is None:
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"gateway reload: SIGHUP sent to pid {pid}; its log says `reloaded`, or "
          f"`reload_invalid` with the reason")
    return 0


def stop_gateway(config: Path, wait_seconds: float) -> int:
    """SIGTERM to the running gateway, then wait until it has drained and exited."""
    try:
        pid_file = pid_file_of(config)
    except ConfigError as exc:
        return _report(config, exc)
    pid = _running(config, pid_file)
    if pid is None:
        return 1
    os.kill(pid, signal.SIGTERM)
    print(f"gateway stop: SIGTERM sent to pid {pid}; waiting for in-flight requests",
          file=sys.stderr)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            if running_pid(pid_file) != pid:
                print(f"gateway stop: pid {pid} stopped")
                return 0
        except PidFileError:
            pass  # a new gateway is taking the file as we look
        time.sleep(_POLL_SECONDS)
    print(f"gateway stop: pid {pid} still runs after {wait_seconds:g} s", file=sys.stderr)
    return 1
