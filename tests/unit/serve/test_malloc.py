"""serve/malloc.py: glibc's thresholds are fixed once per process (the soak's RSS curve in
the README is the measurement; here: that the settings are taken, and only once)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_glibc_takes_the_settings_and_the_environment_wins() -> None:
    code = ("from gateway.serve.malloc import tune_allocator, _SETTINGS\n"
            "print(tune_allocator(), tune_allocator(), len(_SETTINGS))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["True", "True", "3"]
    # An operator's MALLOC_* variable is left to glibc, the others still applied.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True, env={"MALLOC_ARENA_MAX": "1"})
    assert done.stdout.split()[0] == "True"
