"""The configuration loader (docs/configuration.md): every kind of error is reported with its YAML
path,
all at once; env interpolation; relative paths; unknown keys; files checked to parse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, load, load_text
from gateway.config.hashes import hash_opaque

OPAQUE = hash_opaque("x" * 40)


def _config(cert_dir: Path, key: Path, **sections: object) -> dict[str, object]:
    config: dict[str, object] = {
        "server": {"tls": {"cert_file": str(cert_dir / "server.crt"),
                           "key_file": str(cert_dir / "server.key")}},
        "tokens": {"keys": [{"kid": "k1", "private_key_file": str(key)}]},
        "clients": [{"client_id": "aam", "credential_hash": OPAQUE, "scopes": ["s"]}],
        "routes": [{"path": "/segments/aam", "upstream": "http://127.0.0.1:8081/x"}],
    }
    config.update(sections)
    return config


def _errors(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(text, tmp_path / "config.yaml", env or {})
    return caught.value.errors


@pytest.fixture
def good(cert_dir: Path, signing_keys: dict[str, Path]) -> dict[str, object]:
    return _config(cert_dir, signing_keys["ES256"])


def test_valid_config_loads_with_defaults(good: dict[str, object], tmp_path: Path) -> None:
    settings = load_text(yaml.safe_dump(good), tmp_path / "c.yaml", {})
    assert settings.server.port == 8443
    assert settings.server.tls.min_version == "1.2"
    assert settings.tokens.algorithm == "ES256"
    assert settings.routes[0].upstreams == ("http://127.0.0.1:8081/x",)
    assert settings.routes[0].success_status == 200
    assert settings.routes[0].forward_authorization is False
    assert settings.clients[0].rate_limit is None


def test_every_error_is_reported_with_its_path(good: dict[str, object], tmp_path: Path) -> None:
    good["server"] = {"port": "abc", "workers": 0, "bogus": 1,
                      "tls": {"cert_file": "missing.crt", "key_file": "missing.key"}}
    good["routes"] = [{"path": "/a", "upstream": "ftp://x", "payload": "xml"}]
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert "server.port: expected an integer" in errors
    assert "server.workers: must be at least 1" in errors
    assert "server.bogus: unknown key" in errors
    assert "routes[0].upstream: must be an http(s) URL" in errors
    assert any(e.startswith("routes[0].payload: must be one of") for e in errors)
    assert any(e.startswith("server.tls.cert_file: file not found") for e in errors)
    assert any(e.startswith("server.tls.key_file: file not found") for e in errors)


def test_unknown_keys_at_every_level(good: dict[str, object], tmp_path: Path) -> None:
    good["extra"] = 1
    good["clients"] = [{"client_id": "a", "credential_hash": OPAQUE, "scope": ["typo"]}]
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert "extra: unknown key" in errors
    assert "clients[0].scope: unknown key (did you mean 'scopes'?)" in errors


def test_env_interpolation_with_defaults(good: dict[str, object], tmp_path: Path) -> None:
    good["server"]["port"] = "${PORT}"  # type: ignore[index]
    good["routes"][0]["upstream"] = "${BACKEND:-http://127.0.0.1:9/x}"  # type: ignore[index]
    settings = load_text(yaml.safe_dump(good), tmp_path / "c.yaml", {"PORT": "9443"})
    assert settings.server.port == 9443
    assert settings.routes[0].upstreams == ("http://127.0.0.1:9/x",)


def test_missing_env_variable_is_named(good: dict[str, object], tmp_path: Path) -> None:
    good["tokens"]["audience"] = "${AUDIENCE_NOT_SET}"  # type: ignore[index]
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert "tokens.audience: environment variable AUDIENCE_NOT_SET is not set" in errors


def test_relative_paths_are_relative_to_the_config_file(cert_dir: Path,
                                                        signing_keys: dict[str, Path],
                                                        tmp_path: Path) -> None:
    config = _config(cert_dir, signing_keys["ES256"])
    config["server"] = {"tls": {"cert_file": "server.crt", "key_file": "server.key"}}
    path = cert_dir / "relative.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load(path)
    assert settings.server.tls.cert_file == cert_dir / "server.crt"


def test_files_are_checked_to_parse(good: dict[str, object], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    good["server"]["tls"]["cert_file"] = str(junk)  # type: ignore[index]
    good["tokens"]["keys"][0]["private_key_file"] = str(junk)  # type: ignore[index]
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert any(e.startswith("server.tls.cert_file: not a PEM certificate") for e in errors)
    assert any(e.startswith("tokens.keys[0].private_key_file: not an unencrypted PEM private")
               for e in errors)


def test_signing_key_must_match_the_algorithm(good: dict[str, object], tmp_path: Path,
                                              signing_keys: dict[str, Path]) -> None:
    good["tokens"]["keys"][0]["private_key_file"] = str(signing_keys["RS256"])  # type: ignore[index]
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert "tokens.keys[0].private_key_file: is not a key for ES256" in errors


def test_hs256_secret_length_and_shape(good: dict[str, object], tmp_path: Path) -> None:
    good["tokens"] = {"algorithm": "HS256", "keys": [{"kid": "h", "secret": "short"}]}
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert "tokens.keys[0].secret: must be at least 32 bytes (RFC 7518 §3.2)" in errors


def test_hashes_are_validated(good: dict[str, object], tmp_path: Path) -> None:
    good["clients"] = [{"client_id": "a", "secret_hash": "plaintext"},
                       {"client_id": "b", "credential_hash": ["sha256$abc"]},
                       {"client_id": "c"}]
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert any(e.startswith("clients[0].secret_hash: unknown hash scheme") for e in errors)
    assert any(e.startswith("clients[1].credential_hash[0]: sha256 hash") for e in errors)
    assert "clients[2]: needs secret_hash, credential_hash or both" in errors


def test_duplicates_are_errors(good: dict[str, object], tmp_path: Path) -> None:
    good["clients"] = [{"client_id": "a", "credential_hash": OPAQUE}] * 2
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert "clients[1].client_id: duplicate of clients[0]" in errors


def test_duplicate_yaml_keys_and_syntax_errors_name_the_line(tmp_path: Path) -> None:
    errors = _errors("server:\n  port: 1\n  port: 2\n", tmp_path)
    assert "duplicate key 'port'" in errors[0] and "line 3" in errors[0]
    errors = _errors("server: [1, 2\ntokens: {}\n", tmp_path)
    assert "line " in errors[0]


def test_reserved_route_paths(good: dict[str, object], tmp_path: Path) -> None:
    good["routes"] = [{"path": "/oauth2/token", "upstream": "http://127.0.0.1/"}]
    errors = _errors(yaml.safe_dump(good), tmp_path)
    assert "routes[0].path: is reserved for the gateway's own endpoints" in errors


def test_check_config_command(good: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(good))
    ok = subprocess.run([sys.executable, "-m", "gateway", "check-config", "-c", str(path)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout and len(ok.stdout.strip().splitlines()) == 1
    good["server"]["port"] = "x"  # type: ignore[index]
    good["routes"][0]["upstream"] = "nope"  # type: ignore[index]
    path.write_text(yaml.safe_dump(good))
    bad = subprocess.run([sys.executable, "-m", "gateway", "check-config", "-c", str(path)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "server.port: expected an integer" in bad.stderr
    assert "routes[0].upstream: must be an http(s) URL" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout


def test_warnings_do_not_refuse_the_file_and_check_config_prints_them(
        tmp_path: Path) -> None:
    from gateway.config.yamlpath import Reader

    reader = Reader(base_dir=tmp_path)
    reader.warn("routes[0].timeout_seconds", "at or above 3 s")
    assert reader.warnings == ["routes[0].timeout_seconds: at or above 3 s"]
    assert reader.errors == []
