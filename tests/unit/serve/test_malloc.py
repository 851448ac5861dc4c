"""serve/malloc.py: glibc's thresholds are fixed once per process, and freed heap pages go
back to the kernel on a period (the soak's RSS curve in the README is the measurement;
here: that the settings are taken, only once, and that a trim gives pages back)."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading

import pytest

from gateway.serve.malloc import HeapTrimmer


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


_FRAGMENT = """
import random
from gateway.serve.malloc import glibc_trim

def heap_kib():
    kib, inside = 0, False
    for line in open("/proc/self/smaps"):
        if "-" in line.split(" ", 1)[0]:
            inside = line.rstrip().endswith("[heap]")
        elif inside and line.startswith("Rss:"):
            kib += int(line.split()[1])
    return kib

# Heads, bodies and records of the sizes a push brings, one in seven kept: the free
# chunks between the survivors are what a soak leaves behind.
kept = []
for _ in range(3):
    chunks = [bytes(random.choice((600, 2_000, 5_000, 17_000))) for _ in range(8_000)]
    kept += chunks[::7]
    del chunks
before = heap_kib()
glibc_trim()()
print(before, heap_kib())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_a_trim_gives_a_fragmented_heaps_free_pages_back() -> None:
    done = subprocess.run([sys.executable, "-c", _FRAGMENT], capture_output=True, text=True,
                          timeout=60, check=True)
    before, after = map(int, done.stdout.split())
    assert before - after > 8 * 1024, (before, after)  # KiB: most of the ~25 MiB freed


def test_the_trimmer_trims_on_its_period_until_stopped() -> None:
    calls = threading.Semaphore(0)
    trimmer = HeapTrimmer(seconds=0.01, trim=calls.release)
    assert trimmer.start()
    try:
        for _ in range(3):
            assert calls.acquire(timeout=10)
    finally:
        trimmer.stop()
    assert trimmer.trims >= 3
    assert trimmer._thread is not None and not trimmer._thread.is_alive()  # stop joins it


def test_without_a_trim_function_no_thread_starts() -> None:
    trimmer = HeapTrimmer()
    trimmer._trim = None  # what a libc without malloc_trim leaves
    assert trimmer.start() is False
    trimmer.stop()
