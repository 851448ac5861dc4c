"""The SQLite spool's queue (spool/sqlite/statements.py), its writer thread
(spool/sqlite/writer.py) and the deliverers' arithmetic (spool/attempt.py): claims and
leases, arrival order, bounds, dead letters, requeue and purge, group commit, backoff."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.spool.attempt import backoff_seconds, excerpt
from gateway.spool.base import SpoolError
from gateway.spool.sqlite import statements as store
from gateway.spool.sqlite.writer import SpoolWriter

ROUTE = "/segments/aam"
BIG = 1 << 30


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = store.connect(tmp_path / "spool.db")
    yield connection
    connection.close()


def _put(db: sqlite3.Connection, count: int, *, route: str = ROUTE, now: float = 1000.0,
         body: bytes = b"{}") -> list[int]:
    with store.transaction(db):
        ids = [store.insert(db, route, "POST", "", b"X-Request-Id: r\r\n", body, now, BIG, BIG)
               for _ in range(count)]
    assert all(i is not None for i in ids)
    return [int(i) for i in ids if i is not None]


def _claim(db: sqlite3.Connection, owner: str, now: float = 1000.0, limit: int = 32,
           route: str = ROUTE) -> list[int]:
    with store.transaction(db):
        return [item.id for item in store.claim(db, route, owner, now, limit, 60.0)]


def test_the_file_is_private_and_in_wal_mode(tmp_path: Path,
                                              db: sqlite3.Connection) -> None:
    assert (tmp_path / "spool.db").stat().st_mode & 0o777 == 0o600
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_claims_come_in_arrival_order_and_hold_what_was_stored(db: sqlite3.Connection) -> None:
    ids = _put(db, 5)
    with store.transaction(db):
        items = store.claim(db, ROUTE, "a", 1000.0, 3, 60.0)
    assert [i.id for i in items] == ids[:3]
    assert items[0].fields == b"X-Request-Id: r\r\n" and items[0].body == b"{}"
    assert items[0].method == "POST" and items[0].tries == 0


def test_a_route_with_live_leases_is_nobody_elses(db: sqlite3.Connection) -> None:
    _put(db, 4)
    assert len(_claim(db, "a", limit=2)) == 2
    assert _claim(db, "b") == []  # a holds the head: b would overtake it
    assert _claim(db, "a") == []  # a's own batch is still in flight
    assert _claim(db, "b", route="/other") == []  # other routes: nothing stored


def test_the_batch_behind_ones_own_is_claimed_ahead_and_nobody_elses(
        db: sqlite3.Connection) -> None:
    ids = _put(db, 6)
    assert _claim(db, "a", limit=2) == ids[:2]
    with store.transaction(db):  # a's batch in flight: the next one, in order, behind it
        ahead = [i.id for i in store.claim(db, ROUTE, "a", 1000.0, 2, 60.0, after=ids[1])]
    assert ahead == ids[2:4]
    assert _claim(db, "b") == []  # a's leases still hold the head
    with store.transaction(db):  # and a lease behind the point stops a claim ahead too
        assert store.claim(db, ROUTE, "b", 1000.0, 2, 60.0, after=ids[1]) == []
    with store.transaction(db):
        store.retry_later(db, ids[4], 1010.0, "status 503", 503, counted=True,
                          max_attempts=30)
        # a head backing off is not overtaken by a claim ahead either
        assert store.claim(db, ROUTE, "a", 1000.0, 2, 60.0, after=ids[3]) == []


def test_expired_leases_are_claimed_again(db: sqlite3.Connection) -> None:
    ids = _put(db, 2)
    assert _claim(db, "a", now=1000.0) == ids
    assert _claim(db, "b", now=1000.0 + 61) == ids


def test_the_leases_of_a_dead_owner_are_freed_at_once(db: sqlite3.Connection) -> None:
    ids = _put(db, 2)
    _claim(db, "111:dead")
    with store.transaction(db):
        freed = store.reap(db, "222:me", alive=lambda owner: owner != "111:dead")
    assert freed == 2
    assert _claim(db, "222:me") == ids


def test_a_backing_off_head_holds_back_its_route(db: sqlite3.Connection) -> None:
    first, second, _ = _put(db, 3)
    assert _claim(db, "a", limit=1) == [first]
    with store.transaction(db):
        assert not store.retry_later(db, first, 1010.0, "status 503", 503, counted=True,
                                     max_attempts=5)
    assert _claim(db, "a", now=1005.0) == []  # nothing overtakes the head
    # Once due, a head that failed is tried alone (a probe, not a batch).
    assert _claim(db, "a", now=1011.0) == [first]
    with store.transaction(db):
        store.delivered(db, first)
    assert _claim(db, "a", now=1011.0)[0] == second


def test_max_attempts_dead_letters_and_refused_connects_do_not_count(
        db: sqlite3.Connection) -> None:
    (item,) = _put(db, 1)
    with store.transaction(db):
        for _ in range(5):  # the backend is down: tries, not attempts
            assert not store.retry_later(db, item, 0.0, "bad_gateway", None, counted=False,
                                         max_attempts=2)
        assert not store.retry_later(db, item, 0.0, "status 500", 500, counted=True,
                                     max_attempts=2)
        assert store.retry_later(db, item, 0.0, "status 500", 500, counted=True,
                                 max_attempts=2)
    (entry,) = store.entries(db, dead_only=True, limit=10)
    assert entry.id == item and entry.attempts == 2 and entry.last_status == 500
    assert "after 2 attempts" in (entry.last_error or "")
    assert _claim(db, "a") == []  # a dead letter is never delivered


def test_old_items_expire_to_the_dead_letter_list_unless_held(db: sqlite3.Connection) -> None:
    old, held = _put(db, 2, now=1000.0)
    young = _put(db, 1, route="/other", now=1900.0)[0]
    with store.transaction(db):
        store.claim(db, ROUTE, "a", 1950.0, 32, 60.0)
        store.release(db, [old], "a")
        expired = store.expire(db, 2000.0, max_age=500.0)
    assert expired == [(old, ROUTE)]
    dead = {e.id for e in store.entries(db, dead_only=True, limit=10)}
    assert dead == {old} and held not in dead and young not in dead


def test_bounds_count_items_and_bytes_with_dead_letters(db: sqlite3.Connection) -> None:
    with store.transaction(db):
        assert store.insert(db, ROUTE, "POST", "", b"", b"x" * 10, 0.0, 2, 100) is not None
        assert store.insert(db, ROUTE, "POST", "", b"", b"x" * 91, 0.0, 2, 100) is None
        second = store.insert(db, ROUTE, "POST", "", b"", b"x" * 10, 0.0, 2, 100)
        assert store.insert(db, ROUTE, "POST", "", b"", b"", 0.0, 2, 100) is None
        store.dead_letter(db, int(second or 0), 400, "bad")
    assert store.totals(db) == (2, 20)  # a dead letter still occupies the disk
    with store.transaction(db):
        assert store.purge(db, None, 0.0) == 1
    assert store.totals(db) == (1, 10)


def test_requeue_and_purge(db: sqlite3.Connection) -> None:
    a, b, c = _put(db, 3)
    with store.transaction(db):
        store.dead_letter(db, a, 400, "refused")
        store.dead_letter(db, b, 422, "refused")
        assert store.requeue(db, [a], 5000.0) == 1
        assert store.purge(db, [b, 999], 5000.0) == 1
    assert [e.id for e in store.entries(db, dead_only=False, limit=10)] == [a, c]
    assert _claim(db, "x", now=5000.0) == [a, c]  # a requeued item keeps its place
    assert store.route_counts(db)[0].queued == 2


def test_purge_leaves_an_item_in_delivery_alone(db: sqlite3.Connection) -> None:
    (a,) = _put(db, 1)
    assert _claim(db, "deliverer", now=100.0) == [a]  # leased: on its way to the backend
    with store.transaction(db):
        assert store.purge(db, [a], 101.0) == 0
    assert [e.id for e in store.entries(db, dead_only=False, limit=10)] == [a]


def test_route_counts_and_the_oldest_waiting_item(db: sqlite3.Connection) -> None:
    _put(db, 2, now=100.0)
    _put(db, 1, route="/b", now=300.0)
    with store.transaction(db):
        store.dead_letter(db, 1, 400, "x")
    counts = {c.route: c for c in store.route_counts(db)}
    assert counts[ROUTE].queued == 1 and counts[ROUTE].dead == 1
    assert counts[ROUTE].oldest_accepted_at == 100.0 and counts["/b"].oldest_accepted_at == 300.0


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool.db")
    try:
        ids = await asyncio.gather(*(
            writer.call(store.insert, ROUTE, "POST", "", b"", b"{}", 0.0, BIG, BIG)
            for _ in range(200)))
        assert sorted(ids) == list(range(1, 201))  # type: ignore[type-var]
        # Group commit: 200 concurrent requests, far fewer transactions (fsyncs).
        assert writer.operations == 200 and writer.commits < 50
    finally:
        await writer.close()


async def test_one_failing_operation_leaves_its_group_intact(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool.db")

    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO probe VALUES (1, 0)")
        raise ValueError("bug")

    try:
        results = await asyncio.gather(
            writer.call(store.insert, ROUTE, "POST", "", b"", b"{}", 0.0, BIG, BIG),
            writer.call(broken),
            writer.call(store.totals), return_exceptions=True)
        assert results[0] == 1 and isinstance(results[1], ValueError)
        assert results[2] == (1, 2)
        assert await writer.call(lambda db: db.execute("SELECT * FROM probe").fetchall()) == []
    finally:
        await writer.close()


async def test_an_unwritable_spool_fails_each_call(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = SpoolWriter(blocker / "spool.db")
    try:
        with pytest.raises(SpoolError):
            await writer.call(store.totals)
    finally:
        await writer.close()


def test_backoff_doubles_up_to_the_cap_with_half_of_it_jitter() -> None:
    rng = random.Random(1)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (500, 60.0)):
        waits = [backoff_seconds(attempt, 1.0, 60.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 4  # jitter spreads the retries


def test_an_excerpt_is_short_printable_text() -> None:
    assert excerpt(b'{"error": "bad\nrequest"}\x00' + b"x" * 500) == (
        '{"error": "bad request"}' + " " + "x" * 175).strip()
    assert excerpt("é".encode()) == ""  # printable ASCII only, whatever the backend sent
