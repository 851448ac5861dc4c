"""Python's cyclic garbage collector, set for a server that has finished starting.

Everything alive once the listeners are up (modules, configuration, key sets, compiled
schemas: tens of thousands of objects) lives as long as the process. ``gc.freeze`` moves
it out of the collector's generations, so no later collection walks it again.

The thresholds stay Python's: a higher one saved a little CPU but let garbage in cycles
(an error's traceback, a frame holding a request body) wait longer, and the baseline RSS
grew (docs/performance.md).
"""

from __future__ import annotations

import gc

__all__ = ["settle_collector"]


def settle_collector() -> None:
    """Freeze what start-up left. Called once per serving process, after its listeners
    started."""
    gc.collect()
    gc.freeze()
