"""Python's cyclic garbage collector, set for a server that has finished starting.

Everything alive once the listeners are up (modules, configuration, key sets, compiled
schemas: tens of thousands of objects) lives as long as the process. ``gc.freeze`` moves
it out of the collector's generations, so no later collection walks it again.

The thresholds stay Python's. A first-generation threshold of 10,000 saved ~3 % of the
CPU of a forwarded push, but with it the soak's baseline RSS was 82-86 MiB instead of ~78
(README, "Performance": memory): garbage in cycles (an error's traceback, a frame holding
a request body) waits longer for the collector.

The collector's share of a forwarded push's CPU in ``perf`` (``gc_collect_main``,
``visit_decref``, ``visit_reachable``) was ~1.5-2 %.
"""

from __future__ import annotations

import gc

__all__ = ["settle_collector"]


def settle_collector() -> None:
    """Freeze what start-up left. Called once per serving process, after its listeners
    started."""
    gc.collect()
    gc.freeze()
