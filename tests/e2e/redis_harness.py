"""Real ``redis-server`` (and HAProxy) processes for the scale-out tests (docs/deploy.md).

Each test starts its own Redis on a free loopback port, without persistence, and kills it at
the end; ``restart`` brings it back on the same port, empty, as a crashed Redis without AOF
would (``proc_harness.GatewayProcess`` runs ``gateway serve``). Every wait is bounded by a
deadline; nothing here sleeps to time an assertion.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

_SBIN = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"))
REDIS_SERVER = shutil.which("redis-server", path=_SBIN)
HAPROXY = shutil.which("haproxy", path=_SBIN)
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not installed (apt-get install redis-server; .ci/run does)")
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy; .ci/run does)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, no persistence, killed by ``stop``; with
    ``tls`` (certificate, key, CA files) it speaks TLS only on that port."""

    def __init__(self, directory: Path, *extra: str, tls: tuple[Path, Path, Path] | None = None
                 ) -> None:
        assert REDIS_SERVER is not None
        self.port = free_port()
        self.directory = directory
        self.extra: tuple[str, ...] = extra
        if tls is not None:
            cert, key, ca = tls
            self.extra += ("--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                           str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                           "--tls-auth-clients", "no")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "no",
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers():
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not start within 10 s"
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


