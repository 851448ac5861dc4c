"""Python's cyclic garbage collector, set for a server that has finished starting.

Everything alive once the listeners are up (modules, configuration, key sets, compiled
schemas: tens of thousands of objects) lives as long as the process. ``gc.freeze`` moves
it out of the collector's generations, so no later collection walks it again. A request
allocates a few hundred container objects and frees almost all of them by reference
counting; at the default first-generation threshold (700) the collector ran every few
requests and promoted objects still in flight to older generations, which a full collection
later had to walk. At 10,000 it runs about every twenty requests and finds them freed.

Measured (README, "Performance"): ~3 % of the CPU of a forwarded push, the collector's
share in ``perf`` (``gc_collect_main``, ``visit_decref``, ``visit_reachable``) before.
"""

from __future__ import annotations

import gc

__all__ = ["FIRST_GENERATION_THRESHOLD", "settle_collector"]

FIRST_GENERATION_THRESHOLD = 10_000


def settle_collector() -> None:
    """Freeze what start-up left, then collect the young generation less often. Called
    once per serving process, after its listeners started."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION_THRESHOLD, second, third)
