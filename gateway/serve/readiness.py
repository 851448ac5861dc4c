"""``/readyz``'s verdict (docs/operations.md#readiness), shared by the admin listener's
endpoint, its health check (``gateway_ready``, the status page) and nothing else.

Ready when the configuration is loaded, the signing key signs and verifies, every upstream
of a direct route accepts a TCP connection (``upstream.check_reachable``), the spool file
can be written when a spool is in use and, under a supervisor, every worker runs. A shared
state that cannot be reached (Redis down) makes it *degraded*, still ready: every instance
shares the one Redis, so a 503 would make the load balancer pull the whole fleet at once,
while the gateway serves valid traffic without it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Protocol

from gateway.config import Settings
from gateway.forward.upstream import check_reachable
from gateway.oauth.keys import KeySet
from gateway.observe.metrics import Snapshot
from gateway.spool.status import spool_readiness

__all__ = ["AdminProbe", "probe_upstreams", "readiness"]


class AdminProbe(Protocol):
    """What the admin listener asks of the process serving it."""

    def current(self) -> tuple[Settings, KeySet]:
        """The running configuration and its keys."""

    def snapshots(self) -> list[Snapshot]:
        """Metric snapshots to sum (one per process)."""

    def problems(self) -> list[str]:
        """Reasons not to be ready besides configuration, keys and upstreams."""


def _keys_usable(keyset: KeySet) -> str | None:
    token = keyset.sign({"probe": True}, {"typ": "probe"})
    signing_input, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    key = keyset.verification_keys[keyset.signing_kid]
    if not keyset.algorithm_object.verify(signing_input.encode("ascii"), key, raw):
        return f"signing key {keyset.signing_kid!r} does not verify its own signature"
    return None


async def probe_upstreams(settings: Settings) -> dict[str, str | None]:
    """Every configured upstream URL: None when its host accepts a connection, else why not."""
    urls = sorted({url for route in settings.routes for url in route.upstreams})
    reasons = await asyncio.gather(*(check_reachable(url) for url in urls))
    return dict(zip(urls, reasons, strict=True))


async def readiness(probe: AdminProbe, reachable: Mapping[str, str | None] | None = None
                    ) -> tuple[bool, dict[str, object]]:
    """(ready, ``/readyz``'s body); ``reachable`` is ``probe_upstreams``'s answer when the
    caller already has it."""
    settings, keyset = probe.current()
    problems: list[str] = []
    try:
        reason = _keys_usable(keyset)
    except (ValueError, TypeError) as exc:
        reason = f"signing failed: {exc.__class__.__name__}"
    if reason is not None:
        problems.append(f"keys: {reason}")
    if reachable is None:
        reachable = await probe_upstreams(settings)
    # A spool route accepts while its backend is away (docs/operations.md): its backend being
    # down must not take the gateway out of a load balancer, which would refuse the very
    # pushes the spool exists to keep. Only backends of direct routes decide readiness.
    direct = {url for route in settings.routes if route.delivery == "direct"
              for url in route.upstreams}
    urls = sorted(reachable)
    waiting = [f"upstream: {reachable[url]}" for url in urls
               if reachable[url] is not None and url not in direct]
    problems += [f"upstream: {reachable[url]}" for url in urls
                 if reachable[url] is not None and url in direct]
    problems += probe.problems()
    # The spool is reported; it makes the gateway not ready only when its file cannot be
    # written, since then a spool route can accept nothing.
    spool, spool_problem = await spool_readiness(settings)
    problems += [spool_problem] if spool_problem else []
    degraded = _state_degraded(probe.snapshots())
    # A Redis spool that is away: pushes go to the local file, so degraded, not out.
    spool_degraded = spool.get("degraded") if spool is not None else None
    status = ("not_ready" if problems else "degraded" if degraded or spool_degraded
              else "ready")
    body: dict[str, object] = {"status": status,
                               "config": str(settings.source), "upstreams": len(urls)}
    if problems:
        body["reasons"] = problems
    notes = [str(spool_degraded)] if spool_degraded else []
    if degraded:
        notes.insert(0,
            f"state: the {settings.state.backend} shared state is unreachable from "
            f"{degraded} process(es); revocations known before still apply, failed-"
            "authentication counts and rate limits are per process until it returns")
    if notes:
        body["degraded"] = notes
    if spool is not None:
        body["spool"] = spool
    if waiting:
        body["spooling"] = waiting  # unreachable backends of spool routes: pushes wait
    return not problems, body


def _state_degraded(snapshots: list[Snapshot]) -> int:
    """How many processes report their shared state unreachable (the metrics' gauge)."""
    return sum(int(value) for snapshot in snapshots
               for _, value in snapshot.get("gateway_state_degraded", ()))
