"""The Redis spool's store against a real ``redis-server`` (docs/operations.md): what the
scripts of ``gateway/spool/redis/scripts.py`` keep, claim, lease, take over, retry,
dead-letter and bound, without a gateway in front.

Each test starts its own Redis on a loopback port; nothing here sleeps to time an
assertion (lease expiry is driven by short leases and polled with a deadline)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import SpoolSettings
from gateway.spool.base import SpoolError
from gateway.spool.redis.durability import durability_warnings
from gateway.spool.redis.streams import NotReplicated, StreamStore

from polling import until
from redis_harness import RedisServer, needs_redis

pytestmark = needs_redis

ROUTE = "/segments/aam"
LONG = 30.0  # a lease that does not expire during a test


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    started = RedisServer(tmp_path / "redis")
    yield started
    started.stop()


def _settings(server: RedisServer, **change: object) -> SpoolSettings:
    return SpoolSettings(backend="redis", url=server.url, path=Path("unused.db"),
                         **change)  # type: ignore[arg-type]


@pytest.fixture
async def streams(server: RedisServer) -> AsyncIterator[StreamStore]:
    found = StreamStore(_settings(server, max_attempts=3))
    yield found
    await found.close()


def _key() -> str:
    return str(uuid.uuid4())


async def _add(s: StreamStore, n: int, route: str = ROUTE) -> list[int]:
    ids = []
    for i in range(n):
        found = await s.add(route, "POST", f"i={i}", b"X-Request-Id: r-%d\r\n" % i,
                            b'{"n": %d}' % i, key=_key())
        assert found is not None
        ids.append(found)
    return ids


async def test_claims_come_in_arrival_order_and_hold_what_was_stored(
        streams: StreamStore) -> None:
    ids = await _add(streams, 5)
    assert ids == sorted(ids) and len(set(ids)) == 5
    claim = (await streams.claim([(ROUTE, True, LONG)], "a", 3))[ROUTE]
    assert [i.id for i in claim.items] == ids[:3]
    first = claim.items[0]
    assert (first.method, first.query, first.fields, first.body) == (
        "POST", "i=0", b"X-Request-Id: r-0\r\n", b'{"n": 0}')
    assert first.size == len(first.fields) + len(first.body)


async def test_a_leased_route_is_nobody_elses_until_its_lease_ends(
        streams: StreamStore) -> None:
    await _add(streams, 4)
    assert (await streams.claim([(ROUTE, True, LONG)], "a", 2))[ROUTE].items
    assert not (await streams.claim([(ROUTE, True, LONG)], "b", 2))[ROUTE].items
    assert await streams.renew(ROUTE, "a", 30_000)
    assert await streams.client.pttl(streams.key("lease", ROUTE)) > 20_000  # renewed
    assert not await streams.renew(ROUTE, "b", 30_000)
    await streams.release(ROUTE, "a")
    # b takes over a's pending entries first, in order, then the rest.
    taken = (await streams.claim([(ROUTE, True, LONG)], "b", 4))[ROUTE].items
    assert [i.id for i in taken] == [1, 2]
    assert not await streams.renew(ROUTE, "a", 30_000)


async def test_an_expired_lease_is_taken_over_with_the_pending_entries(
        streams: StreamStore) -> None:
    await _add(streams, 3)
    held = (await streams.claim([(ROUTE, True, 0.2)], "dead-instance", 2))[ROUTE].items
    assert [i.id for i in held] == [1, 2]

    async def taken() -> list[int]:
        claim = (await streams.claim([(ROUTE, True, LONG)], "b", 8))[ROUTE]
        return [i.id for i in claim.items]

    assert await until(taken, 5.0, "b taking over the expired lease") == [1, 2]
    for item in held:  # delivered by b; the third comes next
        await streams.delivered([item])
    await streams.release(ROUTE, "b")
    assert [i.id for i in (await streams.claim([(ROUTE, True, LONG)], "b", 8))[ROUTE].items
            ] == [3]


async def test_a_backing_off_head_holds_back_its_route_and_probes_alone(
        streams: StreamStore) -> None:
    await _add(streams, 3)
    head = (await streams.claim([(ROUTE, True, LONG)], "a", 8))[ROUTE].items[0]
    assert not await streams.retry_later(head, 0.3, "status 503", 503, counted=True)
    assert not (await streams.claim([(ROUTE, True, LONG)], "a", 8))[ROUTE].items

    async def probe() -> list[int]:
        return [i.id for i in (await streams.claim([(ROUTE, True, LONG)], "a", 8))[ROUTE].items]

    assert await until(probe, 5.0, "the backoff ending") == [head.id]


async def test_max_attempts_dead_letters_and_refused_connects_do_not_count(
        streams: StreamStore) -> None:
    (item_id,) = await _add(streams, 1)

    async def head() -> object:
        items = (await streams.claim([(ROUTE, True, LONG)], "a", 1))[ROUTE].items
        return items[0] if items else None

    for _ in range(5):  # refused connections: never dead
        item = await until(head, 5.0, "the head")
        assert not await streams.retry_later(item, 0.0, "bad_gateway", None, counted=False)
    results = []
    for _ in range(3):
        item = await until(head, 5.0, "the head")
        results.append(await streams.retry_later(item, 0.0, "status 500", 500, counted=True))
    assert results == [False, False, True]
    (dead,) = await streams.entries(dead_only=True, limit=10)
    assert (dead.id, dead.dead, dead.last_status, dead.attempts) == (item_id, True, 500, 3)
    assert "after 3 attempts" in (dead.last_error or "")
    view = await streams.view()
    assert (view.depth, view.dead_letters, view.items) == (0, 1, 1)


async def test_bounds_count_items_and_bytes_with_dead_letters(server: RedisServer) -> None:
    s = StreamStore(_settings(server, max_items=3))
    try:
        await _add(s, 2)
        item = (await s.claim([(ROUTE, True, LONG)], "a", 1))[ROUTE].items[0]
        await s.dead_letter(item, 422, "refused")
        await _add(s, 1)
        # 3 of 3, one of them dead
        assert await s.add(ROUTE, "POST", "", b"", b"{}", key=_key()) is None
        assert await s.purge(None) == 1
        assert await s.add(ROUTE, "POST", "", b"", b"{}", key=_key()) is not None
    finally:
        await s.close()


async def test_old_items_expire_to_the_dead_letter_list(server: RedisServer) -> None:
    s = StreamStore(_settings(server, max_age_seconds=0.2))
    try:
        await _add(s, 2)

        counted: list[int] = []

        async def expired() -> bool:  # one claim may expire the first before the second
            counted.append((await s.claim([(ROUTE, True, LONG)], "a", 8))[ROUTE].expired)
            return sum(counted) >= 2
        await until(expired, 5.0, "expiry")
        assert sum(counted) == 2
        dead = await s.entries(dead_only=True, limit=10)
        assert [e.id for e in dead] == [1, 2] and "max_age_seconds" in (dead[0].last_error or "")
    finally:
        await s.close()


async def test_requeue_goes_first_and_purge_leaves_a_leased_route_alone(
        streams: StreamStore) -> None:
    await _add(streams, 3)
    first = (await streams.claim([(ROUTE, True, LONG)], "a", 1))[ROUTE].items[0]
    await streams.dead_letter(first, 422, "refused")
    assert await streams.purge([2]) == 0  # a holds the route: in delivery, left alone
    await streams.release(ROUTE, "a")
    assert await streams.requeue([first.id, 999]) == 1
    again = (await streams.claim([(ROUTE, True, LONG)], "b", 8))[ROUTE].items
    assert [i.id for i in again] == [first.id]  # before 2 and 3, which arrived after it
    assert again[0].tries == 0
    await streams.delivered(again[:1])
    await streams.release(ROUTE, "b")
    assert await streams.purge([3]) == 1
    assert [e.id for e in await streams.entries(dead_only=False, limit=10)] == [2]
    view = await streams.view()
    assert (view.depth, view.dead_letters, view.items) == (1, 0, 1)
    assert view.bytes == view.routes[0].bytes > 0


async def test_without_replicas_min_replicas_refuses_and_keeps_nothing(
        server: RedisServer) -> None:
    s = StreamStore(_settings(server, min_replicas=1))
    try:
        with pytest.raises(NotReplicated):
            await s.add(ROUTE, "POST", "", b"", b"{}", key=_key())
        view = await s.view()
        assert (view.depth, view.items, view.bytes) == (0, 0, 0)
    finally:
        await s.close()


async def test_a_push_key_written_twice_is_queued_once(streams: StreamStore) -> None:
    key = _key()
    first = await streams.add(ROUTE, "POST", "", b"", b"{}", key=key)
    again = await streams.add(ROUTE, "POST", "", b"", b"{}", key=key, accepted_at=1.0)
    assert first is not None and again == first  # the retry, or the move, adds nothing
    assert (await streams.view()).depth == 1


async def test_a_push_short_of_replicas_is_staged_never_queued(server: RedisServer) -> None:
    s = StreamStore(_settings(server, min_replicas=1))
    try:
        key = _key()
        with pytest.raises(NotReplicated):
            await s.add(ROUTE, "POST", "", b"", b"{}", key=key)
        assert await s.client.exists(s.key("staged", key))  # out of every queue
        assert await s.client.pttl(s.key("staged", key)) > 0  # and it expires
        assert not await s.client.exists(s.key("q", ROUTE))
        assert (await s.claim([(ROUTE, True, LONG)], "a", 8))[ROUTE].items == []
    finally:
        await s.close()


async def test_an_unreachable_redis_is_a_spool_error_without_the_password(
        server: RedisServer) -> None:
    url = f"redis://:pw-secret-1@127.0.0.1:{server.port}/0"
    server.stop()
    s = StreamStore(SpoolSettings(backend="redis", url=url, path=Path("x.db")))
    try:
        with pytest.raises(SpoolError) as caught:
            await s.add(ROUTE, "POST", "", b"", b"{}", key=_key())
        assert "pw-secret-1" not in str(caught.value)
        assert f"127.0.0.1:{server.port}" in str(caught.value)
        assert not s.usable()  # the next pushes go straight to the local file
    finally:
        await s.close()


@pytest.mark.parametrize(("extra", "min_replicas", "expected"), [
    ((), 0, "appendonly no and appendfsync everysec"),
    (("--appendonly", "yes", "--appendfsync", "always"), 0, None),
    (("--appendonly", "yes", "--appendfsync", "always"), 1, "0 connected replica(s)"),
    (("--rename-command", "CONFIG", ""), 0, "CONFIG GET refused"),
])
async def test_the_durability_redis_gives_is_checked_against_min_replicas(
        tmp_path: Path, extra: tuple[str, ...], min_replicas: int,
        expected: str | None) -> None:
    server = RedisServer(tmp_path / "redis", *extra)
    try:
        found = await durability_warnings(_settings(server, min_replicas=min_replicas))
    finally:
        server.stop()
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


async def test_consumers_that_hold_nothing_are_forgotten(streams: StreamStore) -> None:
    await _add(streams, 2)
    gone = (await streams.claim([(ROUTE, True, LONG)], "gone", 1))[ROUTE].items
    await streams.delivered(gone)  # "gone" holds nothing now
    await streams.release(ROUTE, "gone")
    assert (await streams.claim([(ROUTE, True, LONG)], "holder", 1))[ROUTE].items
    assert await streams.forget_consumers(ROUTE, "me", idle_ms=0) == 1
    names = {c["name"] for c in await streams.client.xinfo_consumers(
        streams.key("q", ROUTE), "deliverers")}
    assert names == {b"holder"}  # the one with a pending entry stays


async def test_a_destroyed_group_is_made_again_and_nothing_is_skipped(
        streams: StreamStore) -> None:
    await _add(streams, 2)
    await streams.client.xgroup_destroy(streams.key("q", ROUTE), "deliverers")
    claim = (await streams.claim([(ROUTE, True, LONG)], "a", 8))[ROUTE]
    assert [i.id for i in claim.items] == [1, 2]
