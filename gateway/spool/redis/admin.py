"""The reading and operating half of the Redis spool: what ``/readyz``, ``/metrics`` and
``gateway spool stats|list|retry|purge`` see and change (docs/operations.md).

The same answers as the SQLite file's (``base.SpoolView``, ``base.Entry``), read from the
streams of ``scripts.py``: a route's depth is the length of its two queue streams
(delivered entries are deleted), its dead letters the length of its dead-letter stream, its
oldest waiting push the first entry of either. Ages are measured on Redis's clock, like
the times they are computed from. Nothing here reads a header block or a body beyond what
the scripts move.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from gateway.spool.base import Entry, RouteCounts, SpoolView
from gateway.spool.redis.scripts import GROUP

if TYPE_CHECKING:
    from gateway.spool.redis.streams import StreamStore

__all__ = ["entries", "meta", "purge", "requeue", "routes", "view"]

_PAGE = 500  # entries read per call while scanning a dead-letter stream


def meta(raw: bytes | str | None) -> dict[str, Any]:
    """An item's delivery state (attempts, tries, next, status, error), {} when none."""
    if not raw:
        return {}
    found = json.loads(raw)
    return found if isinstance(found, dict) else {}


Row = tuple[bytes, dict[bytes, bytes]]


def _fields(flat: Any) -> dict[bytes, bytes]:
    if isinstance(flat, dict):  # redis-py parses XRANGE into (id, {field: value})
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))  # a script's answer: flat


async def _xrange(s: StreamStore, key: str, start: bytes | str = "-", end: bytes | str = "+",
                  count: int | None = None) -> list[Row]:
    return cast(list[Row], await s.client.xrange(key, start, end, count=count))


async def routes(s: StreamStore) -> list[str]:
    """Every route that ever spooled into these streams."""
    found = cast(set[bytes], await s.client.smembers(s.key("routes")))
    return sorted(r.decode() for r in found)


async def view(s: StreamStore, write_probe: bool) -> SpoolView:
    client = s.client
    if write_probe:  # a replica (READONLY) or a full Redis fails here, as a push would
        await client.set(s.key("probe"), b"1", px=60_000)
    names = await routes(s)
    async with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.hgetall(s.key("totals"))
        for route in names:
            for kind in ("again", "q", "dead"):
                pipe.xlen(s.key(kind, route))
            for kind in ("again", "q"):
                pipe.xrange(s.key(kind, route), count=1)
        answers = await pipe.execute()
    (seconds, micros), totals = answers[0], answers[1]
    counts = []
    for i, route in enumerate(names):
        again, queue, dead, *heads = answers[2 + 5 * i: 7 + 5 * i]
        arrivals = [float(_fields(head[0][1])[b"a"]) for head in heads if head]
        counts.append(RouteCounts(route, int(again) + int(queue), int(dead),
                                  int(totals.get(f"bytes:{route}".encode(), 0)),
                                  min(arrivals) if arrivals else None))
    return SpoolView(counts, int(totals.get(b"items", 0)), int(totals.get(b"bytes", 0)),
                     int(seconds) + int(micros) / 1e6)


def _entry(route: str, flat: Any, state: dict[str, Any], dead: bool) -> Entry:
    f = _fields(flat)
    if dead:
        status, error = f.get(b"st", b"").decode(), f.get(b"e", b"").decode()
        attempts, next_at = int(f.get(b"n", b"0")), 0.0
    else:
        status, error = str(state.get("status", "")), str(state.get("error", ""))
        attempts, next_at = int(state.get("attempts", 0)), float(state.get("next", 0))
    return Entry(int(f[b"id"]), route, f[b"m"].decode(), int(f[b"s"]), float(f[b"a"]),
                 attempts, next_at, dead, int(status) if status else None, error or None)


async def entries(s: StreamStore, dead_only: bool, limit: int) -> list[Entry]:
    found: list[Entry] = []
    for route in await routes(s):
        kinds = ("dead",) if dead_only else ("again", "q", "dead")
        for kind in kinds:
            rows = await _xrange(s, s.key(kind, route), count=limit)
            states: list[Any] = [None] * len(rows)
            if kind != "dead" and rows:
                states = await s.client.hmget(s.key("meta", route),
                                              [_fields(r[1])[b"id"] for r in rows])
            found += [_entry(route, row[1], meta(state), kind == "dead")
                      for row, state in zip(rows, states, strict=True)]
    return sorted(found, key=lambda e: e.id)[:limit]


async def _scan(s: StreamStore, key: str) -> list[tuple[int, bytes]]:
    """(item id, entry id) of every entry of the stream at ``key``, in stream order."""
    found: list[tuple[int, bytes]] = []
    start: bytes | str = "-"
    while True:
        rows = await _xrange(s, key, start, count=_PAGE)
        found += [(int(_fields(flat)[b"id"]), entry) for entry, flat in rows]
        if len(rows) < _PAGE:
            return found
        start = b"(" + rows[-1][0]


async def _locate(s: StreamStore, ids: Sequence[int]) -> dict[int, tuple[str, str, bytes]]:
    """Where each of ``ids`` is: (route, stream kind, entry id); unknown ids are absent."""
    wanted, where = set(ids), {}
    for route in await routes(s):
        for kind in ("dead", "again"):
            for item, entry in await _scan(s, s.key(kind, route)):
                if item in wanted:
                    where[item] = (route, kind, entry)
        for item in wanted - set(where):  # a queue entry's id is the item's
            if await _xrange(s, s.key("q", route), f"{item}-0", f"{item}-0"):
                where[item] = (route, "q", f"{item}-0".encode())
    return where


async def _requeue_one(s: StreamStore, route: str, kind: str, entry: bytes) -> int:
    keys = [s.key(k, route) for k in ("dead", "again", "lease", "meta")]
    return int(await s.run("REQUEUE", [*keys, s.key(kind, route)],
                           [GROUP, entry, "1" if kind == "dead" else "0"]))


async def requeue(s: StreamStore, ids: Sequence[int] | None) -> int:
    """Fresh attempts and age. A dead letter goes to the route's ``again`` stream, which is
    delivered before the queue: as on the SQLite file, it comes before what arrived after
    it (requeued together, dead letters keep their arrival order)."""
    if ids is None:
        found = sorted([(item, route, entry) for route in await routes(s)
                        for item, entry in await _scan(s, s.key("dead", route))])
        return sum([await _requeue_one(s, route, "dead", entry) for _, route, entry in found])
    where = await _locate(s, ids)
    return sum([await _requeue_one(s, *where[i]) for i in sorted(set(ids)) if i in where])


async def purge(s: StreamStore, ids: Sequence[int] | None) -> int:
    if ids is None:
        count = 0
        for route in await routes(s):
            while gone := int(await s.run("PURGE_DEAD", [s.key("dead", route), s.key("totals")],
                                          [route, _PAGE])):
                count += gone
        return count
    count = 0
    for route, kind, entry in (await _locate(s, ids)).values():
        count += int(await s.run(
            "PURGE", [s.key(kind, route), s.key("totals"), s.key("meta", route),
                      s.key("lease", route)],
            [GROUP, entry, route, "1" if kind == "dead" else "0"]))
    return count
