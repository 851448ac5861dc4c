"""spool/sqlite/thread.py: the deliverer's thread sees the serving slot's current runtime through a
forwarder of its own loop, and closes a replaced runtime's forwarder once its runs end."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from gateway.config import UpstreamTLSSettings
from gateway.spool.sqlite.thread import _Slot


def _serving() -> SimpleNamespace:
    return SimpleNamespace(settings=SimpleNamespace(upstream_tls=UpstreamTLSSettings()),
                           forwarder=SimpleNamespace(errors=Counter()))


async def test_a_reload_gets_a_new_forwarder_and_the_old_one_closes_when_idle() -> None:
    source = SimpleNamespace(current=_serving())
    slot = _Slot(source)  # type: ignore[arg-type]
    first = slot.current
    assert slot.current is first  # the same runtime: the same forwarder
    assert first.forwarder.errors is source.current.forwarder.errors  # one /metrics count
    first.active = 1  # a run still delivers with it
    source.current = _serving()  # a reload
    second = slot.current
    assert second is not first and second.source is source.current
    await slot.close_idle()
    assert first.forwarder._pools is not None  # in use: kept open
    first.active = 0
    await slot.close_idle()
    assert first.forwarder._pools is None and second.forwarder._pools is not None
    await slot.close()
    assert second.forwarder._pools is None


async def test_stop_returns_when_the_deliverers_loop_will_never_run_it(
        monkeypatch: object) -> None:
    # A deliverer whose run ended on its own leaves a loop that is not closed yet but will
    # never run the stop coroutine: stop must give up on it, not wait forever (a test's
    # teardown hung on exactly that).
    import asyncio
    import threading
    import time

    from gateway.spool.sqlite import thread as thread_module

    made = []

    async def _never() -> None:  # never runs: its loop never turns
        raise AssertionError("the idle loop ran it")

    class _Deliverer:
        def stop(self, seconds: float) -> object:
            made.append(_never())
            return made[-1]

    delivery = object.__new__(thread_module.DeliveryThread)
    delivery.deliverer = _Deliverer()  # type: ignore[assignment]
    delivery._loop = asyncio.new_event_loop()  # open, never run
    delivery._thread = threading.Thread(target=time.sleep, args=(0.2,), daemon=True)
    delivery._thread.start()
    thread_module._STOP_MARGIN = 0.5
    try:
        await asyncio.wait_for(delivery.stop(seconds=0.1), 10)
    finally:
        thread_module._STOP_MARGIN = 5.0
        for coroutine in made:
            coroutine.close()
        delivery._loop.close()
    assert not delivery._thread.is_alive()


async def test_the_loop_closes_only_once_the_stop_has_ended_the_runs_in_flight() -> None:
    # The deliverer's run returns as soon as its stop begins, while the stop still waits
    # for the deliveries in flight. The loop used to close right then: the delivery never
    # finished, its connection stayed open on a closed loop, and the serving side waited
    # for a stop that could no longer end.
    import asyncio
    import threading

    from gateway.spool.sqlite import thread as thread_module

    events: list[str] = []

    class _Deliverer:
        stopping = False

        async def run(self) -> None:
            while not self.stopping:
                await asyncio.sleep(0.01)

        async def stop(self, seconds: float) -> None:
            self.stopping = True
            await asyncio.sleep(0.3)  # a delivery in flight, within the grace period
            events.append("runs ended")

    class _Slot:
        async def close(self) -> None:
            events.append("slot closed")

        async def close_idle(self) -> None:
            pass

    delivery = object.__new__(thread_module.DeliveryThread)
    delivery._slot = _Slot()  # type: ignore[assignment]
    delivery._loop_factory = asyncio.new_event_loop
    delivery._loop = None
    delivery._stopping = None
    delivery._ready = threading.Event()
    delivery.deliverer = _Deliverer()  # type: ignore[assignment]
    delivery._thread = threading.Thread(target=delivery._main, daemon=True)
    delivery._thread.start()
    assert delivery._ready.wait(10)
    await asyncio.wait_for(delivery.stop(seconds=5.0), 20)
    assert not delivery._thread.is_alive()
    assert events == ["runs ended", "slot closed"]
