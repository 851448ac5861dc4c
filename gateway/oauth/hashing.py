"""Slow secret hashes off the event loop: a small, bounded thread pool (docs/security.md).

One scrypt check of a client secret (``ln=14``, 16 MiB) takes tens of milliseconds of CPU.
Run on the event loop, a burst of wrong secrets stalls every request of the process for
the sum of them: bearer pushes included, which IRIS gives 3 s. ``hashlib.scrypt`` releases
the GIL, so in a thread it costs the loop nothing but a core's share.

The pool is per process and bounded both ways: ``HASH_THREADS`` threads (one core is left
to the event loop) and at most ``MAX_WAITING`` checks queued behind them. Past that a new
check is refused ``503`` with ``Retry-After`` at once, never queued: a flood of guesses
costs its senders a fast refusal instead of making every other token request wait behind
it. What never waits here: an opaque credential (one SHA-256, on the loop) and a secret
whose success is cached (an HMAC), which is what IRIS sends again and again.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from gateway.config.hashes import PasswordHash
from gateway.errors import ServiceUnavailableError

__all__ = ["HASH_THREADS", "MAX_WAITING", "HashPool", "hash_pool"]

HASH_THREADS = max(1, min(4, (os.cpu_count() or 1) - 1))
# 32 checks behind one thread at ~50 ms each: the last one waits under 2 s.
MAX_WAITING = 32


def _verify_all(hashes: tuple[PasswordHash, ...], secret: str) -> bool:
    # Every hash is checked (no early exit): several exist only while a secret rotates.
    ok = False
    for stored in hashes:
        ok |= stored.verify(secret)
    return ok


class HashPool:
    """``await verify(hashes, secret)`` in a worker thread; ServiceUnavailableError when
    ``threads + max_waiting`` checks are already in the pool."""

    def __init__(self, threads: int = HASH_THREADS, max_waiting: int = MAX_WAITING) -> None:
        if threads < 1 or max_waiting < 0:
            raise ValueError("a hash pool needs a thread and a non-negative queue")
        self._threads = threads
        self._capacity = threads + max_waiting
        self._executor: ThreadPoolExecutor | None = None
        self.in_pool = 0  # checks running or queued, counted until their thread is done

    async def verify(self, hashes: tuple[PasswordHash, ...], secret: str) -> bool:
        if self.in_pool >= self._capacity:
            raise ServiceUnavailableError(
                "Too many client authentications are in progress; retry shortly.",
                headers={"Retry-After": "1"})
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="scrypt")
        self.in_pool += 1
        job = asyncio.get_running_loop().run_in_executor(self._executor, _verify_all,
                                                         hashes, secret)
        job.add_done_callback(self._done)  # counted until the thread is done, even if the
        return await asyncio.shield(job)   # request that asked was cancelled meanwhile

    def _done(self, _: asyncio.Future[bool]) -> None:
        self.in_pool -= 1


_POOL: HashPool | None = None


def hash_pool() -> HashPool:
    """The process's one pool (made on first use; a worker process makes its own)."""
    global _POOL
    if _POOL is None:
        _POOL = HashPool()
    return _POOL
