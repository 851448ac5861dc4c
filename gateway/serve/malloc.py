"""glibc's allocator, tuned for a long-running server (README, "Performance": memory).

Measured with ``bench/soak.py``: without this, a worker's RSS grew from 58 MiB idle to
77 MiB within 3,000 mixed requests, almost all of it in the main heap. glibc raises its
``mmap`` threshold dynamically: once a large buffer (a 1 MiB body refused with 413, a
20 KiB head) has been freed, later buffers of that size come from the heap, and a heap
fragmented by long-lived small objects cannot give their pages back. Fixing the thresholds
turns the dynamic adjustment off, so large buffers are mapped and unmapped whole, and the
top of the heap is trimmed past 1 MiB; with these settings the same traffic left 60 MiB.

uvloop's per-read TLS buffer (256 KiB) does not come from the allocator: the listener
reads into one buffer per process (``reads.py``). Without that, every read was an
``mmap``, an ``mremap`` and a ``munmap`` (~15 % of a forwarded push's CPU). Without this
module's trimmer, the lent buffer lost memory under the soak (110.0 against 102.5 MiB at
0.5 M requests, two soaks side by side): the reads' bytes, now of their own size, came
from the heap and fragmented it. With the trimmer, two soaks side by side for 6 minutes
(``bench/soak.py --wrk 32 --concurrency 8``) gave the same RSS range under load, 83-109
against 83-103 MiB, and 68.8 against 67.2 MiB once the clients had left, with 9 % more
requests served. The threshold stays at 128 KiB: at 32 KiB every piece of a 100 KB body
was mapped, faulted in page by page and unmapped (the 100 KB bench row at 1.31 ms of CPU
instead of 0.98).

A heap that is fixed in size still keeps what it freed. Long-lived small objects pin pages
between the free chunks, and glibc's ``free`` gives back only the top of the heap. In a
4-minute soak, ``malloc_trim(0)`` called once from a debugger took the main heap from 36
to 19 MiB and the RSS from 91 to 75 MiB: most of the rise under mixed traffic was freed
memory glibc kept; the rest is live, the connections and requests in flight (250 idle TLS
connections held: +7.2 MiB, given back when they closed). ``HeapTrimmer`` makes that call
every ``TRIM_SECONDS`` from its own thread. ctypes releases the GIL for the call, so the
event loop runs on and contends only for the allocator's lock. Timed in the gateway under
the same soak, 35 trims took 1.2 ms at the median, 4.3 ms at p90 and 10.6 ms at most; the
RSS once the clients had left was 67 MiB instead of 77-80. A page given back and used
again costs a page fault; the bench rows with the trimmer (README) include that cost.

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
