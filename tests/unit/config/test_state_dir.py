"""``GATEWAY_STATE_DIR``: the files the gateway writes (pid file, state, spool) resolve
against it when set, the files it reads (certificates, keys) against the configuration's
directory either way. The container image sets it, so a configuration mounted read-only at
/etc/gateway that names no paths keeps its state in the volume (docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, Settings, load_text
from gateway.config.listener import pid_file_of


@pytest.fixture
def config_dir(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path]) -> Path:
    """A configuration naming no runtime path, its certificate and key given relative to
    its own directory (as a mounted /etc/gateway holds them)."""
    etc = tmp_path / "etc"
    (etc / "certs").mkdir(parents=True)
    for name in ("server.crt", "server.key"):
        (etc / "certs" / name).write_bytes((cert_dir / name).read_bytes())
    (etc / "certs" / "jwt.pem").write_bytes(signing_keys["ES256"].read_bytes())
    return etc


def _load(config_dir: Path, env: dict[str, str], extra: dict[str, object] | None = None
          ) -> Settings:
    tree: dict[str, object] = {
        "tokens": {"keys": [{"kid": "k1", "private_key_file": "certs/jwt.pem"}]},
        **(extra or {}),
    }
    return load_text(yaml.safe_dump(tree), config_dir / "config.yaml", env)


def test_without_the_variable_runtime_files_sit_beside_the_config(config_dir: Path) -> None:
    settings = _load(config_dir, {})
    assert settings.server.pid_file == config_dir / "var" / "gateway.pid"
    assert settings.state.path == config_dir / "var" / "gateway.db"
    assert settings.spool.path == config_dir / "var" / "spool.db"


def test_the_variable_moves_runtime_files_and_keeps_inputs(config_dir: Path,
                                                           tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = _load(config_dir, {"GATEWAY_STATE_DIR": str(state)})
    assert settings.server.pid_file == state / "var" / "gateway.pid"
    assert settings.state.path == state / "var" / "gateway.db"
    assert settings.spool.path == state / "var" / "spool.db"
    # What it reads is still the configuration's: a mounted folder of certificates and keys.
    assert settings.server.tls.cert_file == config_dir / "certs" / "server.crt"
    assert settings.tokens.keys[0].private_key_file == config_dir / "certs" / "jwt.pem"


def test_relative_and_absolute_runtime_paths_under_the_variable(config_dir: Path,
                                                                tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = _load(config_dir, {"GATEWAY_STATE_DIR": str(state)}, {
        "server": {"pid_file": "run/gw.pid",
                   "tls": {"cert_file": "certs/server.crt", "key_file": "certs/server.key"}},
        "state": {"path": "db/state.db"},
        "spool": {"path": str(tmp_path / "elsewhere" / "spool.db")},
    })
    assert settings.server.pid_file == state / "run" / "gw.pid"
    assert settings.state.path == state / "db" / "state.db"
    assert settings.spool.path == tmp_path / "elsewhere" / "spool.db"  # absolute: as given


def test_a_relative_variable_is_an_error(config_dir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(config_dir, {"GATEWAY_STATE_DIR": "var/lib/gateway"})
    assert caught.value.errors == [
        "GATEWAY_STATE_DIR: must be an absolute path, not 'var/lib/gateway' (environment)"]


def test_an_empty_variable_is_unset(config_dir: Path) -> None:
    assert _load(config_dir, {"GATEWAY_STATE_DIR": ""}).state.path == \
        config_dir / "var" / "gateway.db"


def test_gateway_reload_and_stop_find_the_pid_file_it_names(
        config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``gateway reload`` / ``stop`` run in the same environment (``podman exec``)."""
    config = config_dir / "config.yaml"
    config.write_text("server: {port: nonsense}\n")
    monkeypatch.setenv("GATEWAY_STATE_DIR", str(tmp_path / "state"))
    assert pid_file_of(config) == tmp_path / "state" / "var" / "gateway.pid"
    monkeypatch.delenv("GATEWAY_STATE_DIR")
    assert pid_file_of(config) == config_dir / "var" / "gateway.pid"
