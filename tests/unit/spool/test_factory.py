"""The one choice of backend per store (spool/factory.py, state/factory.py): the name in the
configuration picks the backend, and nothing connects when it is made."""

from __future__ import annotations

from pathlib import Path

from gateway.config import SpoolSettings, StateSettings
from gateway.spool.factory import backend_for
from gateway.spool.redis.backend import RedisBackend
from gateway.spool.sqlite.backend import SqliteBackend
from gateway.state.factory import open_state
from gateway.state.redis import RedisState
from gateway.state.sqlite import SQLiteState


def test_the_spool_backend_is_the_one_named(tmp_path: Path) -> None:
    sqlite = backend_for(SpoolSettings(path=tmp_path / "spool.db"))
    assert isinstance(sqlite, SqliteBackend)
    assert sqlite.where() == str(tmp_path / "spool.db") and not sqlite.exists()
    redis = backend_for(SpoolSettings(backend="redis", url="redis://:pw-9@10.0.0.5:6380/0",
                                      path=tmp_path / "spool.db", key_prefix="gw:"))
    assert isinstance(redis, RedisBackend)
    assert redis.where() == "redis 10.0.0.5:6380 gw:spool:*" and redis.exists()


async def test_the_state_backend_is_the_one_named(tmp_path: Path) -> None:
    sqlite = open_state(StateSettings(path=tmp_path / "state.db"))
    assert isinstance(sqlite, SQLiteState)
    await sqlite.close()
    redis = open_state(StateSettings(backend="redis", url="redis://127.0.0.1:9/0"))
    assert isinstance(redis, RedisState)
    await redis.close()
