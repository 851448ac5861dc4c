"""What the admin listener says about the spool (docs/operations.md): ``/readyz``'s member
and ``/metrics``' gauges, the same for every backend (``base.SpoolBackend``).

The spool is one store per machine or per fleet, whatever the number of workers, so its
depth and age are read from the store by whoever asks (the admin listener, the
supervisor's included), never summed from the workers' snapshots; each backend reads it
without opening anything per scrape. ``/readyz`` also commits one small write, since "the
spool can take requests" is exactly "the store can be written".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.spool.base import RouteCounts, SpoolError
from gateway.spool.factory import backend_for

if TYPE_CHECKING:  # light to import: `gateway spool` loads it before any configuration
    from gateway.config import Settings
    from gateway.observe.metrics import Snapshot

__all__ = ["in_use", "spool_readiness", "spool_snapshot"]


def in_use(settings: Settings) -> bool:
    """A spool or fallback route is configured, or the store holds something to show (a
    former configuration's spool file; a fleet's streams)."""
    return any(r.spools for r in settings.routes) or backend_for(settings.spool).exists()


async def spool_readiness(settings: Settings) -> tuple[dict[str, object] | None, str | None]:
    """``/readyz``'s ``spool`` member and, when nothing can take a push, the reason; the
    member carries ``degraded`` while the backend takes pushes in a lesser way."""
    if not in_use(settings):
        return None, None
    return await backend_for(settings.spool).readiness()


async def spool_snapshot(settings: Settings) -> list[Snapshot]:
    """The spool's gauges, as one more snapshot for ``metrics.render`` (none when no
    spool is in use or it cannot be read: the gauges are then absent, not zero)."""
    if not in_use(settings):
        return []
    try:
        view, fallback = await backend_for(settings.spool).views()
    except SpoolError:
        return []
    found = {r.route: r for r in view.routes}
    for route in settings.routes:  # a spool route with nothing stored shows 0, not nothing
        if route.spools:
            found.setdefault(route.path, RouteCounts(route.path, 0, 0, 0, None))
    routes = sorted(found.values(), key=lambda r: r.route)
    snapshot: Snapshot = {
        "gateway_spool_depth": [[[r.route], r.queued] for r in routes],
        "gateway_spool_oldest_age_seconds": [[[r.route], view.oldest_age(r)] for r in routes],
        "gateway_spool_dead_letters": [[[r.route], r.dead] for r in routes],
        "gateway_spool_bytes": [[[], view.bytes]],
    }
    if fallback is not None:
        snapshot["gateway_spool_fallback_depth"] = [[[], fallback.depth]]
    return [snapshot]
