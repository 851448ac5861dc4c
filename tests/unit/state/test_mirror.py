"""SharedState over a broadcasting backend that can be switched off (docs/deploy.md, README
"Scale out"): events apply at once, an outage makes it degraded without forgetting what it
knew, a revocation during the outage applies locally and answers 503, and on recovery the
pending and the lost revocations are written back. No Redis here: ``test_redis_*`` use one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from gateway.errors import ServiceUnavailableError
from gateway.observe.metrics import Metrics
from gateway.state.base import BroadcastingState, StateError, StateEvent
from gateway.state.memory import MemoryState
from gateway.state.mirror import SharedState

from polling import until


class Switchable(MemoryState):
    """MemoryState with events, a shared bucket, and an off switch."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.listeners: list[Callable[[StateEvent], None]] = []
        self.subscribed = asyncio.Event()

    def _check(self) -> None:
        if not self.up:
            raise StateError("switched off")

    async def revoke(self, jti: str, expires_at: float) -> None:
        self._check()
        await super().revoke(jti, expires_at)

    async def revoked_since(self, cursor: int) -> tuple[list[tuple[str, float]], int]:
        self._check()
        return (await super().revoked_since(0))[0], 0

    async def blocked(self) -> dict[str, float]:
        self._check()
        return await super().blocked()

    async def count_failure(self, address: str, window: float, limit: int) -> float | None:
        self._check()
        return await super().count_failure(address, window, limit)

    async def listen(self, on_event: Callable[[StateEvent], None],
                     on_subscribed: Callable[[], None]) -> None:
        self._check()
        self.listeners.append(on_event)
        on_subscribed()
        self.subscribed.set()
        try:
            while self.up:
                await asyncio.sleep(0.01)
            raise StateError("connection lost")
        finally:
            self.listeners.remove(on_event)

    async def spend(self, key: str, rate: float, burst: int, spent: int) -> float:
        self._check()
        return float(burst - spent)

    def forget_everything(self) -> None:
        self._revoked.clear()


async def test_outage_degrades_keeps_revocations_and_recovers() -> None:
    backend, metrics = Switchable(), Metrics()
    assert isinstance(backend, BroadcastingState)
    shared = SharedState(backend, metrics)
    assert shared.ledger is not None and shared.degraded  # not subscribed yet
    task = asyncio.create_task(shared.run())
    try:
        await asyncio.wait_for(backend.subscribed.wait(), 5)
        await until(lambda: not shared.degraded, 5)
        assert metrics.state_degraded == 0
        later = time.time() + 60
        for listener in backend.listeners:  # another instance revoked and blocked
            listener(StateEvent("revoked", "from-elsewhere", later))
            listener(StateEvent("blocked", "192.0.2.1", later))
        assert "from-elsewhere" in shared.revoked
        assert shared.blocked_until("192.0.2.1") == later
        await shared.revoke("before", later)

        backend.up = False
        await until(lambda: shared.degraded, 5)
        assert metrics.state_degraded == 1
        assert {"before", "from-elsewhere"} <= shared.revoked  # never forgotten
        with pytest.raises(ServiceUnavailableError) as caught:
            await shared.revoke("during", later)
        assert caught.value.headers()["Retry-After"] == "2"
        assert "during" in shared.revoked  # refused here at once
        with pytest.raises(StateError):
            await shared.record_failure("192.0.2.9", 10)

        backend.forget_everything()  # it comes back empty, as Redis without persistence
        backend.up = True
        await until(lambda: not shared.degraded, 5)
        await until(lambda: {j for j, _ in backend._revoked} >= {"before", "during",
                                                                "from-elsewhere"}, 5)
        assert metrics.state_degraded == 0
        errors = {labels: n for (name, labels), n in metrics.counts.items()
                  if name == "gateway_state_errors_total"}
        assert errors[("revoke",)] == 1 and errors[("count_failure",)] == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_embedded_backend_is_followed_as_before() -> None:
    shared = SharedState(MemoryState())
    assert shared.ledger is None and not shared.degraded
    await shared.revoke("j", time.time() + 60)
    assert "j" in shared.revoked
