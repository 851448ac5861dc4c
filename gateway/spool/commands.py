"""``gateway spool stats|list|retry|purge [-c FILE]``: the operator's view of the spool
(docs/operations.md), the same on every backend (``base.SpoolBackend``, ``base.SpoolStore``).

They work on the store the configuration names, beside a running gateway: the spool file
(WAL: the gateway sees their changes at its next claim) or the streams every instance
shares. Nothing shown ever includes a
request's headers or body (the header block may hold a forwarded token): ids, routes,
sizes, times, attempts, and for dead letters the backend's status and the start of its
answer.

* ``stats``: per route, the requests waiting, the oldest one's age, the dead letters;
  the totals against ``max_items`` and ``max_bytes``.
* ``list [--dead] [--limit N]``: the items, oldest first.
* ``retry ID... | --all-dead``: queue again with fresh attempts (a dead letter goes back
  before what arrived after it, so it is delivered next).
* ``purge ID... | --all-dead``: drop for good.

``spool_stats``, ``spool_entries``, ``spool_retry`` and ``spool_purge`` are the same
operations for a caller with an event loop (they return data; they print nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.spool.base import Entry, SpoolError, SpoolStore
from gateway.spool.factory import backend_for

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["add_arguments", "run", "spool_entries", "spool_purge", "spool_retry",
           "spool_stats"]

T = TypeVar("T")


def _sync(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end, on a loop of its own (in a thread of its own when the
    caller already runs one: a test, or a page of the admin listener)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _with_store(settings: Settings, work: Callable[[SpoolStore], Awaitable[T]]) -> T:
    found = backend_for(settings.spool).open_store()
    try:
        return await work(found)
    finally:
        await found.close()


async def spool_stats(settings: Settings) -> dict[str, Any]:
    """``stats --json``'s object."""
    limits = settings.spool
    backend = backend_for(limits)
    view = await _with_store(settings, lambda s: s.view())
    stats: dict[str, Any] = {
        "backend": limits.backend, "where": backend.where(), "depth": view.depth,
        "dead_letters": view.dead_letters, "oldest_age_seconds": round(view.oldest_age(), 3),
        "items": view.items, "bytes": view.bytes, "max_items": limits.max_items,
        "max_bytes": limits.max_bytes,
        "routes": [{"route": r.route, "depth": r.queued, "dead_letters": r.dead,
                    "bytes": r.bytes, "oldest_age_seconds": round(view.oldest_age(r), 3)}
                   for r in view.routes]}
    stats.update(await backend.details())
    return stats


async def spool_entries(settings: Settings, *, dead_only: bool, limit: int) -> list[Entry]:
    return await _with_store(settings, lambda s: s.entries(dead_only=dead_only,
                                                           limit=max(1, limit)))


async def spool_retry(settings: Settings, ids: Sequence[int] | None, *,
                      dead_only: bool = False) -> int:
    """Requeue ``ids`` (None: every dead letter; ``dead_only``: those of them that are
    dead letters); the number requeued."""
    return await _with_store(settings, lambda s: s.requeue(ids, dead_only=dead_only))


async def spool_purge(settings: Settings, ids: Sequence[int] | None, *,
                      dead_only: bool = False) -> int:
    """Purge ``ids`` (None: every dead letter; ``dead_only``: those of them that are
    dead letters); the number purged."""
    return await _with_store(settings, lambda s: s.purge(ids, dead_only=dead_only))


def add_arguments(parser: argparse.ArgumentParser, config: Path) -> None:
    actions = parser.add_subparsers(dest="spool_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", type=Path, default=config,
                       help="configuration file (default: ./config.yaml)")

    p = actions.add_parser("stats", help="depth, oldest age and dead letters per route")
    common(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p = actions.add_parser("list", help="the items, oldest first (never headers or bodies)")
    common(p)
    p.add_argument("--dead", action="store_true", help="the dead-letter list only")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, text in (("retry", "queue items again, with fresh attempts"),
                       ("purge", "drop items for good")):
        p = actions.add_parser(name, help=text)
        common(p)
        p.add_argument("ids", nargs="*", type=int, metavar="ID")
        p.add_argument("--all-dead", action="store_true", help="every dead letter")


def run(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load

    try:
        settings = load(args.config)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    if args.spool_command in ("retry", "purge") and bool(args.ids) == bool(args.all_dead):
        print(f"spool {args.spool_command}: give item ids or --all-dead", file=sys.stderr)
        return 2
    backend = backend_for(settings.spool)
    # Never create the file here: an empty file means "in use".
    if not backend.exists():
        print(f"{backend.where()}: no spool file (nothing was ever spooled)")
        return 1 if args.spool_command in ("retry", "purge") and args.ids else 0
    try:
        return _ACTIONS[args.spool_command](settings, args)
    except OSError as exc:
        print(f"{backend.where()}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    except SpoolError as exc:
        print(str(exc), file=sys.stderr)
        return 1


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    stats = _sync(spool_stats(settings))
    if args.json:
        print(json.dumps(stats))
        return 0
    print(f"{stats['where']}: {stats['depth']} waiting, {stats['dead_letters']} dead "
          f"letter(s); {stats['items']:,} of {stats['max_items']:,} items, "
          f"{stats['bytes']:,} of {stats['max_bytes']:,} bytes")
    for r in stats["routes"]:
        print(f"  {r['route']}: {r['depth']} waiting (oldest {r['oldest_age_seconds']:.1f} s), "
              f"{r['dead_letters']} dead letter(s), {r['bytes']:,} bytes")
    if "local" in stats:
        print(f"  local fallback {stats['local']['path']}: {stats['local']['depth']} waiting "
              "to move to Redis")
    return 0


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _list(settings: Settings, args: argparse.Namespace) -> int:
    found = _sync(spool_entries(settings, dead_only=args.dead, limit=args.limit))
    now = time.time()
    for e in found:
        state = "dead" if e.dead else ("waiting" if e.next_at <= now
                                       else f"retry in {e.next_at - now:.1f} s")
        if args.json:
            print(json.dumps({"id": e.id, "route": e.route, "method": e.method, "bytes": e.size,
                              "accepted_at": _when(e.accepted_at), "attempts": e.attempts,
                              "state": state, "last_status": e.last_status,
                              "last_error": e.last_error}))
            continue
        error = f"  last: {e.last_status or '-'} {e.last_error}" if e.last_error else ""
        print(f"{e.id:>8}  {e.route}  {e.method} {e.size:,} B  {_when(e.accepted_at)}  "
              f"attempts {e.attempts}  {state}{error}")
    if not found and not args.json:
        print("no dead letters" if args.dead else "the spool is empty")
    return 0


def _change(settings: Settings, args: argparse.Namespace) -> int:
    ids = None if args.all_dead else list(args.ids)
    change = spool_retry if args.spool_command == "retry" else spool_purge
    count = _sync(change(settings, ids))
    verb = "requeued" if args.spool_command == "retry" else "purged"
    print(f"{count} item(s) {verb}")
    # An id that was asked for but not changed: unknown, or being delivered right now.
    return 0 if ids is None or count == len(set(ids)) else 1


_ACTIONS = {"stats": _stats, "list": _list, "retry": _change, "purge": _change}
