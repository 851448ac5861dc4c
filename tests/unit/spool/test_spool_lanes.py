"""The deliverer's run over a route (spool/sqlite/lanes.py, spool/sqlite/deliverer.py): the
next batch is claimed while the current one is in flight, order and halting hold across
batches, and what was claimed but not tried is given back. The backend is a fake
``Forwarder.send``: what is tested is what the deliverer asks of the spool file, which is
real (SQLite, the writer thread)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.config import RouteSettings, SpoolSettings
from gateway.forward.h1pool import UpstreamAnswer
from gateway.spool.accept import Spool
from gateway.spool.sqlite import statements as store
from gateway.spool.sqlite.backend import SqliteBackend
from gateway.spool.sqlite.deliverer import Deliverer, writer_of
from gateway.spool.sqlite.lanes import BATCH

ROUTE = RouteSettings(path="/segments/aam", upstreams=("http://127.0.0.1:9/segments/aam",),
                      delivery="spool", timeout_seconds=2.0)
BIG = 1 << 30


class FakeForwarder:
    """Answers each send with ``answer(item_id)``; records the ids sent, in order."""

    def __init__(self, answer: Callable[[int], Any]) -> None:
        self.sent: list[int] = []
        self._answer = answer

    async def send(self, route: RouteSettings, method: str, raw_query: str, fields: bytes,
                   body: bytes) -> UpstreamAnswer:
        item_id = int(body)
        self.sent.append(item_id)
        result = self._answer(item_id)
        if asyncio.iscoroutine(result):
            result = await result
        return UpstreamAnswer(int(result), [], b"")


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    spool = SqliteBackend(SpoolSettings(path=tmp_path / "spool.db", concurrency=4,
                                        retry_initial_seconds=30.0,
                                        retry_max_seconds=60.0)).open_spool()
    yield spool
    await spool.close()


def _fill(path: Path, count: int) -> list[int]:
    db = store.connect(path)
    try:
        with store.transaction(db):
            ids = [store.insert(db, ROUTE.path, "POST", "", b"", b"%d" % n, 1000.0, BIG, BIG)
                   for n in range(count)]
        # The body names the item, so the fake backend knows which one it got.
        with store.transaction(db):
            for item_id in ids:
                db.execute("UPDATE items SET body = ? WHERE id = ?", (b"%d" % item_id, item_id))
    finally:
        db.close()
    return [int(i) for i in ids if i is not None]


def _leased(path: Path) -> set[int]:
    with sqlite3.connect(path) as db:
        return {i for (i,) in db.execute("SELECT id FROM items WHERE lease_owner IS NOT NULL")}


def _left(path: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT id, tries, lease_owner IS NOT NULL FROM items "
                          "ORDER BY id").fetchall()


async def _deliver(spool: Spool, forwarder: FakeForwarder) -> None:
    runtime = SimpleNamespace(settings=SimpleNamespace(routes=(ROUTE,)), forwarder=forwarder,
                              active=0)
    deliverer = Deliverer(spool, SimpleNamespace(current=runtime), spool.settings)
    items = await writer_of(spool).call(store.claim, ROUTE.path, deliverer.owner, 1000.0, BATCH,
                                    600.0)
    async with asyncio.timeout(30):
        await deliverer._deliver(runtime, ROUTE, items)  # type: ignore[arg-type]
    assert runtime.active == 0


async def test_the_next_batch_is_claimed_while_the_first_is_in_flight(
        spool: Spool, tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    ids = _fill(path, 3 * BATCH + 5)
    claimed_ahead: list[bool] = []
    forwarder: FakeForwarder

    def ahead() -> bool:
        return ids[BATCH] in _leased(path) or ids[BATCH] in forwarder.sent

    async def answer(item_id: int) -> int:
        if item_id == ids[BATCH - 1]:
            # The last item of the first batch is in flight: the second batch must get
            # claimed (and maybe sent) meanwhile; a deliverer claiming only after a batch
            # ends never does.
            deadline = asyncio.get_running_loop().time() + 10
            while not ahead() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            claimed_ahead.append(ahead())
        return 200

    forwarder = FakeForwarder(answer)
    await _deliver(spool, forwarder)
    assert claimed_ahead == [True]
    assert sorted(forwarder.sent) == ids and len(forwarder.sent) == len(ids)
    assert _left(path) == []  # every one delivered and deleted


async def test_a_retry_halts_the_run_and_gives_back_what_was_claimed_ahead(
        spool: Spool, tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    ids = _fill(path, 2 * BATCH)
    failing = ids[BATCH + 3]  # in the batch claimed ahead

    forwarder = FakeForwarder(lambda item_id: 503 if item_id == failing else 200)
    await _deliver(spool, forwarder)
    left = _left(path)
    # Up to concurrency - 1 items behind the failed one may have been in flight with it;
    # nothing else left, and what is left is free to claim again (no lease), the failed one
    # marked as tried.
    assert failing in forwarder.sent and max(forwarder.sent) <= failing + 3
    assert left[0] == (failing, 1, 0)
    assert all(leased == 0 for _, _, leased in left)
    assert [i for i, _, _ in left] == [i for i in ids if i not in forwarder.sent or i == failing]
