"""``spool.backend: sqlite``: the deliverer's own thread and event loop (``deliverer.py``,
docs/architecture.md); ``DeliveryThread`` is this backend's ``base.SpoolDeliverer``.

Why: under a burst the serving event loop is saturated by accepts, and every wake-up of a
coroutine on it waits for a whole pass over its ready queue. Measured with
``bench/burst.py`` (README, "Performance"), a pass took 7-20 ms while pushes arrived, and a
delivery spent about two of them per item on top of the backend's own service time, so a
backend capped at a few hundred pushes a second was kept at half of that or less until the
burst ended. On a loop of its own the deliverer waits only for the GIL, which the serving
thread hands over within the interpreter's switch interval (5 ms), whatever the load.

What crosses the threads, and why it is safe:

* the serving ``RuntimeSlot`` is only read (one attribute, once per round);
* each serving runtime gets a ``Forwarder`` of this loop (a pool's connections belong to
  the loop that opened them), sharing the runtime forwarder's error counts for /metrics,
  and closed here once a reload replaced the runtime and its runs ended;
* ``SpoolWriter`` already resolves every caller's future on the caller's own loop, and
  ``Spool.wake`` may be set from any thread;
* the spool's counters are written by one thread per key (accepts here, deliveries there).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable

from gateway.config import Settings, SpoolSettings
from gateway.forward.upstream import Forwarder
from gateway.spool.accept import Spool
from gateway.spool.base import DeliveryRuntime, RuntimeSource
from gateway.spool.sqlite.deliverer import Deliverer

__all__ = ["DeliveryThread"]

_JANITOR_SECONDS = 1.0
_START_SECONDS = 30.0
# How long a thread waiting for the GIL lets the serving thread run before it asks for it:
# the deliverer needs it once or twice per item, so this bounds what each item waits.
SWITCH_SECONDS = 0.001


class _Runtime:
    """A serving runtime as the deliverer's thread sees it: its settings, this loop's
    forwarder, and the runs using that forwarder."""

    __slots__ = ("active", "forwarder", "settings", "source")

    def __init__(self, source: DeliveryRuntime) -> None:
        self.source = source
        self.settings: Settings = source.settings
        self.forwarder = Forwarder(source.settings.upstream_tls)
        self.forwarder.errors = source.forwarder.errors  # one upstream error count
        self.forwarder.open()
        self.active = 0


class _Slot:
    """``RuntimeSource`` for the deliverer: the serving slot's current runtime, mapped to
    its ``_Runtime``; replaced ones are kept until their runs end."""

    def __init__(self, source: RuntimeSource) -> None:
        self._source = source
        self._current: _Runtime | None = None
        self._retired: list[_Runtime] = []

    @property
    def current(self) -> _Runtime:
        serving = self._source.current
        mine = self._current
        if mine is None or mine.source is not serving:
            if mine is not None:
                self._retired.append(mine)
            mine = self._current = _Runtime(serving)
        return mine

    async def close_idle(self) -> None:
        idle = [r for r in self._retired if not r.active]
        self._retired = [r for r in self._retired if r.active]
        for runtime in idle:
            await runtime.forwarder.close()

    async def close(self) -> None:
        for runtime in [*self._retired, *([self._current] if self._current else [])]:
            await runtime.forwarder.close()


class DeliveryThread:
    """Runs one ``Deliverer`` on its own thread and loop; ``start`` and ``stop`` are called
    from the serving loop."""

    def __init__(self, spool: Spool, slot: RuntimeSource, settings: SpoolSettings,
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        self._slot = _Slot(slot)
        self.deliverer = Deliverer(spool, self._slot, settings)
        self._loop_factory = loop_factory or _new_loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="gateway-deliverer",
                                        daemon=True)

    async def start(self) -> None:
        """Start the thread, without blocking the serving loop while it comes up."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        # Process-wide: the serving thread is asked for the GIL after 1 ms instead of
        # 5 ms, only while another thread waits for it (this one, the spool writer).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_SECONDS))
        self._thread.start()
        if not self._ready.wait(_START_SECONDS):
            raise RuntimeError("the spool deliverer's thread did not start")

    async def stop(self, seconds: float = 5.0) -> None:
        """Stop claiming, give deliveries in flight up to ``seconds``, end the thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(self._begin_stop, seconds)
        # The thread ends once the deliverer's stop has ended its runs (_run); a loop that
        # never turns again cannot hold this longer than the bound.
        await asyncio.to_thread(self._thread.join, seconds + 10)

    def _begin_stop(self, seconds: float) -> None:
        # On the deliverer's loop. ``run`` returns as soon as the stop begins, while the
        # stop still waits for the runs in flight: _run awaits it before the loop closes,
        # or the loop closed with deliveries and their connections still open.
        self._stopping = asyncio.get_running_loop().create_task(self.deliverer.stop(seconds))

    def _main(self) -> None:
        loop = self._loop = self._loop_factory()
        asyncio.set_event_loop(loop)
        self._ready.set()
        try:
            loop.run_until_complete(self._run())
        finally:
            loop.run_until_complete(self._slot.close())
            loop.close()

    async def _run(self) -> None:
        janitor = asyncio.get_running_loop().create_task(self._janitor())
        try:
            await self.deliverer.run()
            if self._stopping is not None:
                await self._stopping
        finally:
            janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(_JANITOR_SECONDS)
            await self._slot.close_idle()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # the serving loop's kind when installed (serve/server.py)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
