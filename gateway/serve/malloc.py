"""glibc's allocator, tuned for a long-running server (README, "Performance": memory).

Measured with ``bench/soak.py``: without this, a worker's RSS grew from 58 MiB idle to
77 MiB within 3,000 mixed requests, almost all of it in the main heap. glibc raises its
``mmap`` threshold dynamically: once a large buffer (a 1 MiB body refused with 413, a
20 KiB head) has been freed, later buffers of that size come from the heap, and a heap
fragmented by long-lived small objects cannot give their pages back. Fixing the thresholds
turns the dynamic adjustment off, so large buffers are mapped and unmapped whole, and the
top of the heap is trimmed past 1 MiB; with these settings the same traffic left 60 MiB.

The threshold costs CPU on one path: uvloop reads each TLS record for a plain
``asyncio.Protocol`` (aiohttp's handler) into a fresh 256 KiB ``bytes`` and shrinks it, so
every read is an ``mmap``, an ``mremap`` and a ``munmap`` (~15 % of a forwarded push's CPU;
README, "Performance"). Every way around it that was measured kept the CPU and lost the
memory: a 512 KiB threshold (the soak at 152 MiB within 80 s), a buffered protocol lending
one read buffer (8 MiB more than this after 0.5 M soak requests, same conditions), or that
with a 32 KiB threshold (the 100 KB bench row at 1.31 ms instead of 0.98). Kept mapped, each
read's pages go back whole.

The environment still wins: ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` set by an
operator are left alone. On a libc other than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["MMAP_THRESHOLD_BYTES", "tune_allocator"]

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 128 * 1024
_SETTINGS = (
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
    ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, 1024 * 1024),
    ("MALLOC_ARENA_MAX", _M_ARENA_MAX, 2),
)
_done = False


def tune_allocator() -> bool:
    """Apply the settings once per process; whether glibc took them."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc: its allocator has no such knobs
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for name, param, value in _SETTINGS
             if name not in os.environ)
    _done = ok
    return ok
