"""What the start-up check of the Redis spool says for what Redis answered
(``gateway/spool/redis/durability.py``, docs/deploy.md): one warning per way Redis falls
short of ``min_replicas``, none when it gives it."""

from __future__ import annotations

from pathlib import Path

from gateway.config import SpoolSettings
from gateway.spool.redis.durability import assess

_ALWAYS = {"appendonly": "yes", "appendfsync": "always"}


def _settings(min_replicas: int) -> SpoolSettings:
    return SpoolSettings(backend="redis", url="redis://:pw-x@10.0.0.5:6380/0",
                         path=Path("spool.db"), min_replicas=min_replicas)


def test_what_loses_nothing_says_nothing() -> None:
    assert assess(_settings(0), {"role": "master", "connected_slaves": 0}, _ALWAYS) == []
    assert assess(_settings(1), {"role": "master", "connected_slaves": 1},
                  {"appendonly": "no", "appendfsync": "everysec"}) == []


def test_everysec_without_replicas_is_a_warning_naming_the_host_not_the_url() -> None:
    (found,) = assess(_settings(0), {"role": "master"},
                      {"appendonly": "yes", "appendfsync": "everysec"})
    assert "appendfsync everysec" in found and "10.0.0.5:6380" in found
    assert "pw-x" not in found and "redis://" not in found


def test_a_replica_and_too_few_replicas_are_each_said() -> None:
    found = assess(_settings(2), {"role": "slave", "connected_slaves": 1}, None)
    assert len(found) == 2
    assert "is a replica" in found[0] and "1 connected replica(s)" in found[1]


def test_config_refused_is_said_only_when_it_matters() -> None:
    (found,) = assess(_settings(0), {"role": "master"}, None)
    assert "CONFIG GET refused" in found
    assert assess(_settings(1), {"role": "master", "connected_slaves": 1}, None) == []
