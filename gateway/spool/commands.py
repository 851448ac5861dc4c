"""``gateway spool stats|list|retry|purge [-c FILE]``: the operator's view of the spool
(docs/operations.md).

They open the spool file named by the configuration directly (WAL: safe while the gateway
runs, which sees their changes at its next claim). Nothing shown ever includes a request's
headers or body (the header block may hold a forwarded token): ids, routes, sizes, times,
attempts, and for dead letters the backend's status and the start of its answer.

* ``stats``: per route, the requests waiting, the oldest one's age, the dead letters;
  the totals against ``max_items`` and ``max_bytes``.
* ``list [--dead] [--limit N]``: the items, oldest first.
* ``retry ID... | --all-dead``: queue again with fresh attempts (a dead letter goes back to
  its place in arrival order, so it is delivered next).
* ``purge ID... | --all-dead``: drop for good.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.spool import store
from gateway.spool.status import read_view

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["add_arguments", "run"]


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
    if not settings.spool.path.exists():  # never create it here: an empty file means "in use"
        print(f"{settings.spool.path}: no spool file (nothing was ever spooled)")
        return 1 if args.spool_command in ("retry", "purge") and args.ids else 0
    try:
        return _ACTIONS[args.spool_command](settings, args)
    except (sqlite3.Error, OSError) as exc:
        print(f"{settings.spool.path}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    view = read_view(settings.spool.path)
    limits = settings.spool
    if args.json:
        print(json.dumps({
            "path": str(limits.path), "depth": view.depth, "dead_letters": view.dead_letters,
            "oldest_age_seconds": round(view.oldest_age(), 3), "items": view.items,
            "bytes": view.bytes, "max_items": limits.max_items, "max_bytes": limits.max_bytes,
            "routes": [{"route": r.route, "depth": r.queued, "dead_letters": r.dead,
                        "bytes": r.bytes, "oldest_age_seconds": round(view.oldest_age(r), 3)}
                       for r in view.routes]}))
        return 0
    print(f"{limits.path}: {view.depth} waiting, {view.dead_letters} dead letter(s); "
          f"{view.items:,} of {limits.max_items:,} items, {view.bytes:,} of "
          f"{limits.max_bytes:,} bytes")
    for r in view.routes:
        print(f"  {r.route}: {r.queued} waiting (oldest {view.oldest_age(r):.1f} s), "
              f"{r.dead} dead letter(s), {r.bytes:,} bytes")
    return 0


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _list(settings: Settings, args: argparse.Namespace) -> int:
    db = store.connect(settings.spool.path)
    try:
        found = store.entries(db, dead_only=args.dead, limit=max(1, args.limit))
    finally:
        db.close()
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
    db = store.connect(settings.spool.path)
    try:
        with store.transaction(db):
            if args.spool_command == "retry":
                count = store.requeue(db, ids, time.time())
            else:
                count = store.purge(db, ids, time.time())
    finally:
        db.close()
    verb = "requeued" if args.spool_command == "retry" else "purged"
    print(f"{count} item(s) {verb}")
    # An id that was asked for but not changed: unknown, or being delivered right now.
    return 0 if ids is None or count == len(set(ids)) else 1


_ACTIONS = {"stats": _stats, "list": _list, "retry": _change, "purge": _change}
