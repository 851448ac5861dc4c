"""Durability checked, not assumed (docs/deploy.md, "A spool that loses nothing").

A push answered ``200`` by the Redis spool survives what Redis is configured to survive:

* ``min_replicas: 0``: only Redis's own disk. Nothing answered is lost when Redis crashes
  only with ``appendonly yes`` and ``appendfsync always`` (``everysec`` can lose the last
  second, no AOF everything since the last snapshot).
* ``min_replicas: N``: the push is in the memory of N replicas too (``WAIT``), so it
  survives the loss of the primary; with fewer than N replicas connected every push is
  answered ``503``.

At start, ``gateway serve`` reads ``appendonly``, ``appendfsync`` (``CONFIG GET``, which
a managed Redis may refuse: that is said, not treated as an error) and the role and
replica count (``INFO replication``), and logs one warning (``reason_id:
spool_durability``) for each way they fall short of what ``min_replicas`` asks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError

from gateway.config import SpoolSettings
from gateway.spool.base import SpoolError
from gateway.spool.redis.streams import StreamStore, where

__all__ = ["assess", "durability_warnings", "startup_warnings"]

_CHECK_SECONDS = 3.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def assess(settings: SpoolSettings, info: dict[str, Any],
           config: dict[str, str] | None) -> list[str]:
    """The warnings for what Redis said: ``info`` is ``INFO replication``, ``config`` the
    ``appendonly``/``appendfsync`` values, or None when ``CONFIG GET`` was refused."""
    found, server = [], where(settings)
    role = _text(info.get("role", "master"))
    replicas = int(info.get("connected_slaves", 0))
    if role != "master":
        found.append(f"spool: {server} is a replica (role {role}): it refuses writes, so "
                     "every push goes to the local spool file until it is promoted or "
                     "spool.url names the primary")
    wanted = settings.min_replicas
    if wanted and replicas < wanted:
        found.append(f"spool: {server} has {replicas} connected replica(s), fewer than "
                     f"spool.min_replicas={wanted}: pushes are answered 503 until "
                     "enough replicas connect")
    if wanted == 0:
        if config is None:
            found.append(f"spool: cannot read appendonly/appendfsync on {server} (CONFIG "
                         "GET refused): with min_replicas 0 a push answered 200 is as "
                         "durable as that Redis's persistence, which is not checked")
        elif config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
            found.append(
                f"spool: {server} has appendonly {config.get('appendonly', '?')} and "
                f"appendfsync {config.get('appendfsync', '?')}, and spool.min_replicas is 0: "
                "a Redis crash can lose pushes already answered 200; set appendonly yes "
                "with appendfsync always, or min_replicas 1 or more with replicas "
                "(docs/deploy.md)")
    return found


async def durability_warnings(settings: SpoolSettings) -> list[str]:
    """Ask the spool's Redis and assess its answers."""
    streams = StreamStore(settings)
    try:
        async with asyncio.timeout(_CHECK_SECONDS):
            info = await streams.call(lambda: streams.client.info("replication"))
            config: dict[str, str] | None
            try:
                raw = await streams.client.config_get("append*")
                config = {_text(k): _text(v) for k, v in raw.items()}
            except RedisError:  # renamed, disabled or not allowed to this user
                config = None
    except (SpoolError, TimeoutError) as exc:
        return [f"spool: cannot check the durability of {where(settings)} at start "
                f"({exc or 'timed out'}); pushes go to the local spool file while it is "
                "unreachable"]
    finally:
        await streams.close()
    return assess(settings, dict(info), config)


def startup_warnings(settings: SpoolSettings) -> list[str]:
    """``durability_warnings`` for ``gateway serve``, before its own loop starts."""
    return asyncio.run(durability_warnings(settings))
