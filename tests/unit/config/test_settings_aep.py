"""The two keys Adobe Experience Platform needs (docs/configuration.md, docs/aep.md): a
client's own token lifetime (``clients[].ttl_seconds``, AEP's 24 h beside IRIS's hour) and a
route's own body bound (``routes[].max_body_bytes``, AEP's multi-MB batches beside IRIS's
small pushes), each with its bounds, its default and its YAML path in errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, Settings, load_text
from gateway.config.hashes import hash_opaque


@pytest.fixture
def config(cert_dir: Path, signing_keys: dict[str, Path]) -> dict[str, Any]:
    return {
        "server": {"tls": {"cert_file": str(cert_dir / "server.crt"),
                           "key_file": str(cert_dir / "server.key")}},
        "tokens": {"keys": [{"kid": "k1", "private_key_file": str(signing_keys["ES256"])}]},
        "clients": [{"client_id": "aam", "credential_hash": hash_opaque("x" * 40),
                     "scopes": ["segments:write"]},
                    {"client_id": "aep", "credential_hash": hash_opaque("y" * 40),
                     "scopes": ["segments:write"], "ttl_seconds": 86400}],
        "routes": [{"path": "/segments/aam", "upstream": "http://127.0.0.1:8081/x"},
                   {"path": "/segments/aep", "upstream": "http://127.0.0.1:8081/y",
                    "max_body_bytes": 16 << 20}],
    }


def load(config: dict[str, Any], tmp_path: Path) -> Settings:
    return load_text(yaml.safe_dump(config), tmp_path / "config.yaml", {})


def errors(config: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(config, tmp_path)
    return caught.value.errors


def test_each_client_and_route_may_have_its_own_and_others_keep_the_sections(
        config: dict[str, Any], tmp_path: Path) -> None:
    settings = load(config, tmp_path)
    aam, aep = settings.clients
    assert (aam.ttl_seconds, aep.ttl_seconds) == (None, 86400)
    assert settings.tokens.ttl_seconds == 3600
    iris, batches = settings.routes
    assert (iris.max_body_bytes, batches.max_body_bytes) == (None, 16 << 20)
    assert iris.body_limit(settings.server) == settings.server.max_body_bytes == 1 << 20
    assert batches.body_limit(settings.server) == 16 << 20


def test_null_means_the_sections_value(config: dict[str, Any], tmp_path: Path) -> None:
    config["clients"][1]["ttl_seconds"] = None
    config["routes"][1]["max_body_bytes"] = None
    settings = load(config, tmp_path)
    assert settings.clients[1].ttl_seconds is None
    assert settings.routes[1].body_limit(settings.server) == 1 << 20


def test_a_route_may_also_allow_less_than_the_server(config: dict[str, Any],
                                                     tmp_path: Path) -> None:
    config["routes"][0]["max_body_bytes"] = 4096
    settings = load(config, tmp_path)
    assert settings.routes[0].body_limit(settings.server) == 4096


@pytest.mark.parametrize(("where", "value", "expected"), [
    ("client", 59, "clients[1].ttl_seconds: must be at least 60"),
    ("client", 86401, "clients[1].ttl_seconds: must be at most 86400"),
    ("client", "a day", "clients[1].ttl_seconds: expected an integer"),
    ("client", True, "clients[1].ttl_seconds: expected an integer"),
    ("route", 1023, "routes[1].max_body_bytes: must be at least 1024"),
    ("route", (1 << 30) + 1, "routes[1].max_body_bytes: must be at most 1073741824"),
    ("route", "3MB", "routes[1].max_body_bytes: expected an integer"),
])
def test_out_of_bounds_values_are_refused_with_their_path(
        config: dict[str, Any], tmp_path: Path, where: str, value: Any, expected: str) -> None:
    if where == "client":
        config["clients"][1]["ttl_seconds"] = value
    else:
        config["routes"][1]["max_body_bytes"] = value
    assert expected in errors(config, tmp_path)


def test_environment_substitution_gives_integers(config: dict[str, Any],
                                                 tmp_path: Path) -> None:
    config["clients"][1]["ttl_seconds"] = "${AEP_TTL:-43200}"
    config["routes"][1]["max_body_bytes"] = "${AEP_BODY:-8388608}"
    settings = load(config, tmp_path)
    assert settings.clients[1].ttl_seconds == 43200
    assert settings.routes[1].max_body_bytes == 8 << 20


def test_a_spooling_route_cannot_allow_more_than_the_spool_holds(
        config: dict[str, Any], tmp_path: Path) -> None:
    config["routes"][1]["delivery"] = "fallback"
    config["spool"] = {"max_bytes": 8 << 20}
    assert errors(config, tmp_path) == [
        "routes[1].max_body_bytes: must be at most spool.max_bytes"]
    config["routes"][1]["delivery"] = "direct"  # a direct route stores nothing
    load(config, tmp_path)


def test_check_config_reports_both_keys_by_path(config: dict[str, Any],
                                                 tmp_path: Path) -> None:
    config["clients"][1]["ttl_seconds"] = 10
    config["routes"][1]["max_body_bytes"] = 10
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", "-c", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "clients[1].ttl_seconds: must be at least 60" in result.stdout + result.stderr
    assert "routes[1].max_body_bytes: must be at least 1024" in result.stdout + result.stderr


def test_unknown_neighbours_are_still_refused(config: dict[str, Any], tmp_path: Path) -> None:
    config["clients"][1]["ttl"] = 86400
    assert any(e.startswith("clients[1].ttl: unknown key") for e in errors(config, tmp_path))
