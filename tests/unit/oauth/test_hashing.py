"""The slow-hash pool (oauth/hashing.py): off the event loop, bounded, and counted until
each thread is done."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.config.hashes import PasswordHash
from gateway.errors import ServiceUnavailableError
from gateway.oauth.hashing import HashPool


class Gate(PasswordHash):
    """A hash whose check waits for ``release`` (a stand-in for a slow scrypt)."""

    release = threading.Event()
    threads: list[str] = []

    def verify(self, secret: str) -> bool:
        Gate.threads.append(threading.current_thread().name)
        assert Gate.release.wait(10)
        return secret == "right"


async def test_checks_run_in_the_pool_and_past_its_room_are_refused_at_once() -> None:
    Gate.release.clear()
    pool = HashPool(threads=1, max_waiting=2)
    gate = (Gate("sha256", b""),)
    running = [asyncio.ensure_future(pool.verify(gate, "right")) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(ServiceUnavailableError) as caught:
        await pool.verify(gate, "right")  # 1 running + 2 waiting: no room for a fourth
    assert caught.value.status_code == 503 and caught.value.headers()["Retry-After"] == "1"
    running[0].cancel()  # the caller left; its thread still holds the place until done
    await asyncio.sleep(0)
    assert pool.in_pool == 3
    Gate.release.set()
    assert await asyncio.gather(*running[1:]) == [True, True]
    async with asyncio.timeout(5):
        while pool.in_pool:
            await asyncio.sleep(0.01)
    assert all(name.startswith("scrypt") for name in Gate.threads)
    assert not await pool.verify(gate, "wrong")
