"""Real Redis Sentinels (``redis-server --sentinel``) watching real ``redis-server``s, for
the failover tests (docs/deploy.md section 6).

``SentinelFleet`` starts a primary, its replicas and three Sentinels on free loopback
ports, with timings tuned for tests (``down-after-milliseconds`` 1000, a short
``failover-timeout``), so a primary killed with SIGKILL is replaced within a few seconds.
Every wait is bounded by a deadline; ``stop`` kills everything it started.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis

from redis_harness import REDIS_SERVER, RedisServer, free_port

__all__ = ["MASTER", "SentinelFleet"]

MASTER = "gw-primary"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class SentinelFleet:
    """A primary, ``replicas`` replicas and three Sentinels (quorum 2)."""

    def __init__(self, directory: Path, replicas: int = 1) -> None:
        self.directory = directory
        self.primary = RedisServer(directory / "primary")
        self.replicas = [RedisServer(directory / f"replica{i}", "--replicaof", "127.0.0.1",
                                     str(self.primary.port)) for i in range(replicas)]
        self.sentinel_ports: list[int] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self._wait(lambda: all(self._linked(r) for r in self.replicas),
                   "the replicas in sync with the primary")
        for i in range(3):
            self._sentinel(i)
        self._wait(lambda: all(self._sees_all(p) for p in self.sentinel_ports),
                   "every Sentinel seeing the replicas and the other Sentinels")

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def _sentinel(self, i: int) -> None:
        assert REDIS_SERVER is not None
        port = free_port()
        home = self.directory / f"sentinel{i}"
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {home}\nprotected-mode no\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
            f"sentinel parallel-syncs {MASTER} 2\n")
        self.sentinels.append(subprocess.Popen(
            [REDIS_SERVER, str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        self.sentinel_ports.append(port)
        self._wait(lambda: _answers(port), f"sentinel {i} answering")

    @staticmethod
    def _linked(server: RedisServer) -> bool:
        with redis.Redis(port=server.port, socket_timeout=1) as client:
            info = client.info("replication")
        return info.get("master_link_status") == "up"

    def _sees_all(self, port: int) -> bool:
        with redis.Redis(port=port, socket_timeout=1) as client:
            state = client.sentinel_master(MASTER)
        return (int(state["num-other-sentinels"]) == 2
                and int(state["num-slaves"]) == len(self.replicas))

    def master_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    _, master = client.sentinel_get_master_addr_by_name(MASTER)
                    return int(master)
            except (redis.RedisError, OSError, TypeError):
                continue
        return None

    def by_port(self, port: int) -> RedisServer:
        return next(s for s in self.servers() if s.port == port)

    @staticmethod
    def _wait(found: object, what: str, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if found():  # type: ignore[operator]
                    return
            except (redis.RedisError, OSError):
                pass
            assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        for server in self.servers():
            server.stop()
