"""Where a load run's limit was: the simulator, the gateway or the backend.

The simulator knows its own CPU use: at 90% of one core or more it cannot offer more load,
so it measured itself. To tell the gateway from the backend it reads the gateway's
``/metrics`` on the admin listener before and after the run (``--admin-url``): the
gateway's time per request (``gateway_request_duration_seconds``) and, within it, the time
spent waiting for the backend (``gateway_upstream_duration_seconds``) on the route pushed
to. When the backend holds most of the gateway's time, the backend is the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["SIMULATOR_BOTTLENECK", "GatewayTimes", "Verdict", "scrape", "verdict"]

# At or above this share of one core the simulator, not the target, limits the rate: the
# event loop is busy building requests and parsing responses and cannot offer more load.
SIMULATOR_BOTTLENECK = 0.90
# The backend is the limit when waiting for it is at least this share of the gateway's time.
BACKEND_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class GatewayTimes:
    """Counts of one route from the gateway's /metrics (or the difference of two reads)."""

    requests: float
    request_seconds: float
    upstream_seconds: float

    def __sub__(self, before: GatewayTimes) -> GatewayTimes:
        return GatewayTimes(self.requests - before.requests,
                            self.request_seconds - before.request_seconds,
                            self.upstream_seconds - before.upstream_seconds)


@dataclass(frozen=True, slots=True)
class Verdict:
    where: str  # "simulator", "gateway", "backend" or "unknown"
    why: str


def parse(text: str, route: str) -> GatewayTimes:
    """The route's request count, request seconds and upstream seconds."""
    found = {"gateway_request_duration_seconds_count": 0.0,
             "gateway_request_duration_seconds_sum": 0.0,
             "gateway_upstream_duration_seconds_sum": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in found and sample.labels.get("route") == route:
                found[sample.name] += sample.value
    return GatewayTimes(found["gateway_request_duration_seconds_count"],
                        found["gateway_request_duration_seconds_sum"],
                        found["gateway_upstream_duration_seconds_sum"])


async def scrape(admin_url: str, route: str) -> GatewayTimes:
    """Read ``admin_url``/metrics; raises aiohttp.ClientError, TimeoutError, ValueError."""
    url = admin_url.rstrip("/") + "/metrics"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
            session.get(url) as response:
        if response.status != 200:
            raise ValueError(f"{url} answered {response.status}")
        return parse(await response.text(), route)


def verdict(cpu_utilisation: float, gateway: GatewayTimes | None,
            scrape_problem: str | None) -> Verdict:
    if cpu_utilisation >= SIMULATOR_BOTTLENECK:
        return Verdict("simulator", (
            f"The simulator, not the gateway, was the bottleneck: it used "
            f"{cpu_utilisation:.0%} of one core. The requests/s above is a lower bound for "
            "the gateway; run several simulator processes to load it harder."))
    if gateway is None or gateway.requests <= 0:
        why = (f"cannot read the gateway's metrics ({scrape_problem})" if scrape_problem
               else "pass --admin-url http://127.0.0.1:9090 (the gateway's admin listener) "
                    "to tell the gateway from the backend")
        return Verdict("unknown", f"Bottleneck: not the simulator ({cpu_utilisation:.0%} of "
                                  f"one core); {why}.")
    own = gateway.request_seconds / gateway.requests * 1000
    waiting = gateway.upstream_seconds / gateway.requests * 1000
    share = gateway.upstream_seconds / gateway.request_seconds if gateway.request_seconds else 0
    figures = (f"{own:.2f} ms per request in the gateway, {waiting:.2f} ms of it waiting for "
               f"the backend ({share:.0%})")
    if share >= BACKEND_SHARE:
        return Verdict("backend", f"Bottleneck: the backend. {figures}.")
    return Verdict("gateway", f"Bottleneck: the gateway. {figures}; the simulator used "
                              f"{cpu_utilisation:.0%} of one core.")
