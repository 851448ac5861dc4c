"""The ``spool`` section's backend (docs/configuration.md): SQLite by default; ``backend: redis``
with its own URL or the state's Redis, ``min_replicas``, a password no repr shows; every
misuse reported with its YAML path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, SpoolSettings, load_text


@pytest.fixture
def base(cert_dir: Path, signing_keys: dict[str, Path]) -> dict[str, Any]:
    return {
        "server": {"tls": {"cert_file": str(cert_dir / "server.crt"),
                           "key_file": str(cert_dir / "server.key")}},
        "tokens": {"keys": [{"kid": "k1", "private_key_file": str(signing_keys["ES256"])}]},
    }


def _spool(base: dict[str, Any], spool: dict[str, Any], tmp_path: Path,
           state: dict[str, Any] | None = None,
           env: dict[str, str] | None = None) -> SpoolSettings:
    text = yaml.safe_dump({**base, "spool": spool, **({"state": state} if state else {})})
    return load_text(text, tmp_path / "config.yaml", env or {}).spool


def _errors(base: dict[str, Any], spool: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _spool(base, spool, tmp_path)
    return caught.value.errors


def test_sqlite_is_the_default(base: dict[str, Any], tmp_path: Path) -> None:
    spool = _spool(base, {}, tmp_path)
    assert (spool.backend, spool.url, spool.min_replicas) == ("sqlite", None, 0)
    assert spool.path == (tmp_path / "var/spool.db").resolve()


def test_redis_with_its_own_url_and_a_password_no_repr_shows(
        base: dict[str, Any], tmp_path: Path) -> None:
    spool = _spool(base, {"backend": "redis", "url": "redis://streams.internal:6379/3",
                          "password": "${SPOOL_PW}", "min_replicas": 2,
                          "key_prefix": "aam:"}, tmp_path, env={"SPOOL_PW": "pw-in-env-7"})
    assert (spool.backend, spool.url, spool.password) == (
        "redis", "redis://streams.internal:6379/3", "pw-in-env-7")
    assert (spool.min_replicas, spool.key_prefix) == (2, "aam:")
    assert "pw-in-env-7" not in repr(spool) and "streams.internal" not in repr(spool)
    assert spool.path == (tmp_path / "var/spool.db").resolve()  # the local fallback


def test_redis_without_a_url_is_the_states_redis(base: dict[str, Any], tmp_path: Path) -> None:
    state = {"backend": "redis", "url": "rediss://state.internal:6380/0", "password": "s-pw",
             "key_prefix": "fleet:"}
    spool = _spool(base, {"backend": "redis"}, tmp_path, state=state)
    assert (spool.url, spool.password, spool.key_prefix) == (
        "rediss://state.internal:6380/0", "s-pw", "fleet:")


def test_without_url_or_sentinel_the_spool_uses_the_states_sentinels(
        base: dict[str, Any], tmp_path: Path) -> None:
    sentinel = {"master_name": "gw", "nodes": ["s1:26379", "s2:26379", "s3:26379"]}
    state = {"backend": "redis", "sentinel": sentinel}
    spool = _spool(base, {"backend": "redis", "min_replicas": 1}, tmp_path, state=state)
    assert spool.url is None and spool.sentinel is not None
    assert spool.sentinel.master_name == "gw" and len(spool.sentinel.nodes) == 3
    own = _spool(base, {"backend": "redis", "sentinel": {**sentinel, "master_name": "other"}},
                 tmp_path, state=state)
    assert own.sentinel is not None and own.sentinel.master_name == "other"


def test_redis_misuse_is_reported_with_its_path(base: dict[str, Any], tmp_path: Path) -> None:
    assert _errors(base, {"backend": "redis"}, tmp_path) == [
        "spool.url: is required when backend is redis (or sentinel: instead)"]
    assert _errors(base, {"backend": "redis", "url": "https://x:1"}, tmp_path) == [
        "spool.url: must be a redis:// or rediss:// URL"]
    assert _errors(base, {"backend": "redis", "url": "redis://x:1", "min_replicas": -1},
                   tmp_path) == ["spool.min_replicas: must be at least 0"]
    assert _errors(base, {"backend": "redis", "url": "redis://x:1", "key_prefix": "a b"},
                   tmp_path) == [
        "spool.key_prefix: must be 1-64 characters of A-Z a-z 0-9 _ - : . { }"]
    assert _errors(base, {"backend": "kafka"}, tmp_path) == [
        "spool.backend: must be one of 'sqlite', 'redis'"]
    assert _errors(base, {"url": "redis://x:1", "min_replicas": 1}, tmp_path) == [
        "spool.url: applies to backend: redis only",
        "spool.min_replicas: applies to backend: redis only"]
