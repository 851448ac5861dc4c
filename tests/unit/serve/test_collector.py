"""serve/collector.py: start-up's objects frozen out of the collector, Python's thresholds
kept (the soak's RSS curve in the README is the measurement)."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc
from gateway.serve.collector import settle_collector
before = gc.get_freeze_count()
settle_collector()
print(before, gc.get_freeze_count() > 1_000, gc.get_threshold() == (700, 10, 10))
"""


def test_start_up_objects_are_frozen_and_the_thresholds_kept() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["0", "True", "True"]
