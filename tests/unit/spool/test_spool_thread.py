"""spool/thread.py: the deliverer's thread sees the serving slot's current runtime through a
forwarder of its own loop, and closes a replaced runtime's forwarder once its runs end."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from gateway.config import UpstreamTLSSettings
from gateway.spool.thread import _Slot


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
