"""The two-instance row: two ``gateway serve`` processes sharing one ``redis-server``,
behind HAProxy started with the shipped ``deploy/haproxy.cfg`` (docs/deploy.md).

On one box the row shows what the scale-out path costs (HAProxy's TLS termination and
re-encryption, a second hop), not what a second machine adds: all the processes share
the same cores as wrk and the backend. Its CPU column sums HAProxy and both gateways.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixtures import Fixtures
from procs import Processes, Started, cpu_seconds, free_port, tree, wait_port

__all__ = ["Fleet", "FleetRow", "fleet_missing", "start_fleet"]

HAPROXY_CFG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"


@dataclass
class Fleet(Started):
    """HAProxy (``proc``) and the processes behind it (``members``), measured together."""

    members: list[Started] = field(default_factory=list)

    def cpu(self) -> float:
        pids = [pid for started in (self, *self.members) for pid in tree(started.pid)]
        return cpu_seconds(pids)


def fleet_missing() -> str | None:
    """Why the row cannot run here, or None."""
    missing = [name for name in ("haproxy", "redis-server") if shutil.which(name) is None]
    return f"{' and '.join(missing)} not installed (apt-get install {' '.join(missing)})" \
        if missing else None


def _ports(started: Started) -> dict[str, int]:
    inside = started.line[started.line.index("(") + 1:started.line.index(")")]
    return {k: int(v) for k, v in (item.split("=") for item in inside.split(", "))}


def start_fleet(procs: Processes, fx: Fixtures, backend_port: int) -> tuple[Fleet, int]:
    """Redis, two gateways on it, HAProxy in front; (the fleet, HAProxy's port)."""
    redis_port = free_port()
    redis = procs.start("redis", ["redis-server", "--port", str(redis_port), "--bind",
                                  "127.0.0.1", "--save", "", "--appendonly", "no"])
    wait_port(redis_port)
    config = fx.gateway_config(workers=1,
                               backend_url=f"http://127.0.0.1:{backend_port}/segments/aam",
                               state={"backend": "redis",
                                      "url": f"redis://127.0.0.1:{redis_port}/0"})
    env = {**os.environ, "HAPROXY_PEM": str(fx.pem), "GATEWAY_CA_FILE": str(fx.ca),
           "GATEWAY_TLS_NAME": "localhost"}
    gateways = []
    for index in (1, 2):
        gateway = procs.start(f"gateway-{index}-of-2",
                              [sys.executable, "-m", "gateway", "serve", "-c", str(config)],
                              ready="gateway serving",
                              env={**os.environ,
                                   "GATEWAY_PID_FILE": f"var/gateway-{index}-of-2.pid"})
        ports = _ports(gateway)
        env[f"GATEWAY{index}"] = f"127.0.0.1:{ports['https']}"
        env[f"GATEWAY{index}_ADMIN_PORT"] = str(ports["admin"])
        gateways.append(gateway)
    port = free_port()
    env["HAPROXY_BIND"] = f"127.0.0.1:{port}"
    haproxy = procs.start("haproxy-fleet", ["haproxy", "-db", "-f", str(HAPROXY_CFG)], env=env)
    wait_port(port)
    return Fleet(haproxy.name, haproxy.proc, stderr_tail=haproxy.stderr_tail,
                 members=[*gateways, redis]), port


class FleetRow:
    """``rows.Bench``'s ``gateway-2x`` row, kept here with what it starts."""

    def _row_gateway_2x(self: Any, key: str) -> None:
        reason = fleet_missing()
        if reason is not None:
            self._skip(key, reason)
            return
        fleet, port = start_fleet(self.procs, self.fx, self.backend_port)
        try:
            self._measure_proxy(key, fleet, port, self._gateway_token(port), verifies=True)
        finally:  # _measure_proxy stops HAProxy; the rest is stopped here, at once
            for member in fleet.members:
                self.procs.stop(member)
