"""serve/collector.py: start-up's objects frozen out of the collector, the young generation
collected less often (the CPU it saves is measured in the README, not here)."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import gc
from gateway.serve.collector import FIRST_GENERATION_THRESHOLD, settle_collector
before = gc.get_freeze_count()
settle_collector()
print(before, gc.get_freeze_count() > 1_000, gc.get_threshold()[0] == FIRST_GENERATION_THRESHOLD)
"""


def test_start_up_objects_are_frozen_and_the_threshold_raised() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["0", "True", "True"]
