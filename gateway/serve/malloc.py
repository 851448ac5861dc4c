"""glibc's allocator, tuned for a long-running server.

``tune_allocator`` fixes glibc's ``mmap`` and trim thresholds (and caps the arenas), so a
large buffer, once freed, is unmapped whole instead of fragmenting the heap; ``HeapTrimmer``
calls ``malloc_trim(0)`` every ``TRIM_SECONDS`` from its own thread (ctypes releases the
GIL), giving back the free pages glibc's ``free`` keeps. Without both, a worker's RSS grew
under mixed traffic and stayed high; the measurements are in docs/performance.md.

The environment still wins: ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` set by an
operator are left alone. On a libc other than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Callable

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_SECONDS", "HeapTrimmer", "glibc_trim", "tune_allocator"]

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
TRIM_SECONDS = 5.0
_done = False


@functools.cache  # find_library runs ldconfig: once per process, not per caller
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator() -> bool:
    """Apply the settings once per process; whether glibc took them."""
    global _done
    if _done:
        return True
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False  # not glibc: its allocator has no such knobs
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for name, param, value in _SETTINGS
             if name not in os.environ)
    _done = ok
    return ok


def glibc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None on a libc without it."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class HeapTrimmer:
    """Gives the allocator's free pages back to the kernel every ``seconds``, on a daemon
    thread of its own (the module's docstring has the measurements)."""

    def __init__(self, seconds: float = TRIM_SECONDS,
                 trim: Callable[[], object] | None = None) -> None:
        self._seconds = seconds
        self._trim = trim if trim is not None else glibc_trim()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0

    def start(self) -> bool:
        """Start the thread; False (and no thread) where the libc cannot trim."""
        if self._trim is None:
            return False
        self._thread = threading.Thread(target=self._run, name="heap-trim", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self._seconds + 1.0)

    def _run(self) -> None:
        trim = self._trim
        assert trim is not None
        while not self._stopping.wait(self._seconds):
            trim()
            self.trims += 1
