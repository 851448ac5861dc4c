"""The ``state`` section (docs/configuration.md, docs/deploy.md): SQLite by default; ``backend:
redis`` with a
``redis://`` or ``rediss://`` URL, a password from ``${VAR}`` that no repr shows, a CA for
TLS and a key prefix; every misuse reported with its YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, StateSettings, load_text


@pytest.fixture
def base(cert_dir: Path, signing_keys: dict[str, Path]) -> dict[str, object]:
    return {
        "server": {"tls": {"cert_file": str(cert_dir / "server.crt"),
                           "key_file": str(cert_dir / "server.key")}},
        "tokens": {"keys": [{"kid": "k1", "private_key_file": str(signing_keys["ES256"])}]},
    }


def _state(base: dict[str, object], state: dict[str, object], tmp_path: Path,
           env: dict[str, str] | None = None) -> StateSettings:
    text = yaml.safe_dump({**base, "state": state})
    return load_text(text, tmp_path / "config.yaml", env or {}).state


def _errors(base: dict[str, object], state: dict[str, object], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _state(base, state, tmp_path)
    return caught.value.errors


def test_sqlite_is_the_default(base: dict[str, object], tmp_path: Path) -> None:
    state = _state(base, {}, tmp_path)
    assert state.backend == "sqlite" and state.path == (tmp_path / "var/gateway.db").resolve()


def test_redis_with_password_from_the_environment(base: dict[str, object], tmp_path: Path,
                                                  cert_dir: Path) -> None:
    state = _state(base, {"backend": "redis", "url": "rediss://redis.internal:6380/2",
                          "password": "${REDIS_PASSWORD}", "ca_file": str(cert_dir / "ca.crt"),
                          "key_prefix": "aam-gw:"}, tmp_path, {"REDIS_PASSWORD": "hunter2-x"})
    assert (state.backend, state.url, state.password) == (
        "redis", "rediss://redis.internal:6380/2", "hunter2-x")
    assert state.ca_file == cert_dir / "ca.crt" and state.key_prefix == "aam-gw:"
    assert "hunter2-x" not in repr(state) and "redis.internal" not in repr(state)


def test_redis_misuse_is_reported_with_its_path(base: dict[str, object], tmp_path: Path,
                                                cert_dir: Path) -> None:
    assert _errors(base, {"backend": "redis"}, tmp_path) == [
        "state.url: is required when backend is redis (or sentinel: instead)"]
    errors = _errors(base, {"backend": "redis", "url": "http://:pw-in-url@x:1"}, tmp_path)
    assert errors == ["state.url: must be a redis:// or rediss:// URL"]
    errors = _errors(base, {"backend": "redis", "url": "redis://x:1",
                            "ca_file": str(cert_dir / "ca.crt"), "key_prefix": "a b"}, tmp_path)
    assert "state.ca_file: applies to rediss:// URLs only" in errors
    assert any(e.startswith("state.key_prefix: must be") for e in errors)
    errors = _errors(base, {"backend": "sqlite", "url": "redis://x:1"}, tmp_path)
    assert errors == ["state.url: applies to backend: redis only"]
    errors = _errors(base, {"backend": "memcached"}, tmp_path)
    assert len(errors) == 1 and errors[0].startswith("state.backend")


def test_sentinel_in_place_of_a_url(base: dict[str, object], tmp_path: Path,
                                    cert_dir: Path) -> None:
    state = _state(base, {"backend": "redis", "sentinel": {
        "master_name": "gw", "nodes": ["s1.internal:26379", "10.0.0.7:26380"],
        "username": "gateway", "password": "${REDIS_PASSWORD}",
        "sentinel_password": "sent-pw-3", "ca_file": str(cert_dir / "ca.crt"), "db": 2}},
        tmp_path, {"REDIS_PASSWORD": "hunter2-y"})
    assert state.url is None and state.sentinel is not None
    assert state.sentinel.master_name == "gw" and state.sentinel.db == 2
    assert state.sentinel.nodes == (("s1.internal", 26379), ("10.0.0.7", 26380))
    assert state.sentinel.password == "hunter2-y"
    assert "hunter2-y" not in repr(state) and "sent-pw-3" not in repr(state)


@pytest.mark.parametrize(("sentinel", "url", "expected"), [
    ({"master_name": "gw", "nodes": ["s:26379"]}, "redis://r:6379/0",
     "state.url: goes with sentinel: give one of them"),
    ({"nodes": ["s:26379"]}, None, "state.sentinel.master_name: is required"),
    ({"master_name": "gw"}, None, "state.sentinel.nodes: needs at least one Sentinel"),
    ({"master_name": "gw", "nodes": ["s"]}, None, "state.sentinel.nodes[0]: must be host:port"),
    ({"master_name": "gw", "nodes": ["s:1"], "port": 1}, None, "state.sentinel.port"),
])
def test_sentinel_misuse_is_reported_with_its_path(
        base: dict[str, object], tmp_path: Path, sentinel: dict[str, object],
        url: str | None, expected: str) -> None:
    state: dict[str, object] = {"backend": "redis", "sentinel": sentinel}
    if url is not None:
        state["url"] = url
    errors = _errors(base, state, tmp_path)
    assert any(e.startswith(expected) for e in errors), errors
