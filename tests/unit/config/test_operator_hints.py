"""What the loader tells an operator who made a usual mistake: did-you-mean for unknown
keys and values, whole commands in hints, a sha256$ hash under the wrong key, an issuer
the listener cannot be, and ``server.pid_file`` resolved beside the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, load_text
from gateway.config.hashes import hash_opaque
from gateway.config.listener import pid_file_of

OPAQUE = hash_opaque("x" * 40)


@pytest.fixture
def good(cert_dir: Path, signing_keys: dict[str, Path]) -> dict[str, object]:
    return {
        "server": {"tls": {"cert_file": str(cert_dir / "server.crt"),
                           "key_file": str(cert_dir / "server.key")}},
        "tokens": {"keys": [{"kid": "k1", "private_key_file": str(signing_keys["ES256"])}]},
        "clients": [{"client_id": "aam", "credential_hash": OPAQUE, "scopes": ["s"]}],
        "routes": [{"path": "/segments/aam", "upstream": "http://127.0.0.1:8081/x"}],
    }


def _errors(config: dict[str, object], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(yaml.safe_dump(config), tmp_path / "config.yaml", {})
    return caught.value.errors


def _warnings(config: dict[str, object], tmp_path: Path) -> tuple[str, ...]:
    return load_text(yaml.safe_dump(config), tmp_path / "config.yaml", {}).warnings


@pytest.mark.parametrize(("section", "value", "expected"), [
    ("tokens", {"algorithm": "es256"}, "tokens.algorithm: must be one of 'ES256', 'RS256', "
                                       "'EdDSA', 'HS256' (did you mean 'ES256'?)"),
    ("tokens", {"algorithm": "none"}, "tokens.algorithm: must be one of 'ES256', 'RS256', "
                                      "'EdDSA', 'HS256'"),
    ("tokens", {"algorithm": 256}, "tokens.algorithm: expected a string: must be one of"),
    ("state", {"backend": "Redis"}, "state.backend: must be one of 'sqlite', 'redis' (did you "
                                    "mean 'redis'?)"),
    ("logging", {"level": "warn"}, "logging.level: must be one of 'debug', 'info', 'warning', "
                                   "'error' (did you mean 'warning'?)"),
    ("server", {"tsl": {}}, "server.tsl: unknown key (did you mean 'tls'?)"),
    ("server", {"pidfile": "x"}, "server.pidfile: unknown key (did you mean 'pid_file'?)"),
])
def test_enumerations_and_unknown_keys_say_what_was_meant(
        good: dict[str, object], tmp_path: Path, section: str, value: dict[str, object],
        expected: str) -> None:
    good[section] = {**good.get(section, {}), **value}  # type: ignore[dict-item]
    errors = _errors(good, tmp_path)
    assert any(e.startswith(expected) for e in errors), errors
    if section == "tokens":  # the keys are not judged against a refused algorithm
        assert not any(e.startswith("tokens.keys") for e in errors), errors


def test_es512_with_an_es256_key_is_one_error(good: dict[str, object], tmp_path: Path) -> None:
    good["tokens"]["algorithm"] = "ES512"  # type: ignore[index]
    assert _errors(good, tmp_path) == [
        "tokens.algorithm: must be one of 'ES256', 'RS256', 'EdDSA', 'HS256' (did you mean "
        "'ES256'?)"]


def test_missing_files_hint_the_whole_command(good: dict[str, object], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    good["server"] = {"tls": {"cert_file": "certs/server.crt", "key_file": "certs/server.key"}}
    good["tokens"] = {"algorithm": "EdDSA",
                      "keys": [{"kid": "dev-1", "private_key_file": "certs/jwt-dev-1.pem"}]}
    errors = _errors(good, tmp_path)
    assert any(e.endswith("(run `gateway certs --dir certs`)")
               and e.startswith("server.tls.cert_file: file not found") for e in errors)
    assert any(e.endswith("(run `gateway keys generate --alg EdDSA --kid dev-1 --out "
                          "certs/jwt-dev-1.pem`)") for e in errors), errors


def test_no_keys_hint_is_a_whole_command(good: dict[str, object], tmp_path: Path) -> None:
    good["tokens"] = {"keys": []}
    assert "tokens.keys: at least one key is required (`gateway keys generate --alg ES256 " \
           "--kid k1 --out certs/jwt-k1.pem`)" in _errors(good, tmp_path)


def test_sha256_under_secret_hash_names_credential_hash(good: dict[str, object],
                                                        tmp_path: Path) -> None:
    good["clients"] = [{"client_id": "aam", "secret_hash": OPAQUE, "scopes": ["s"]}]
    (error,) = _errors(good, tmp_path)
    assert error.startswith("clients[0].secret_hash: must be an scrypt$ hash")
    assert "belongs in credential_hash" in error


@pytest.mark.parametrize(("server", "issuer", "warned"), [
    ({"port": 8444}, "https://localhost:8443", "tokens.issuer: port 8443 is not server.port 8444"),
    ({"port": 443}, "https://gw.example.com", "tokens.issuer: host gw.example.com cannot be "
                                              "server.host 127.0.0.1"),
    ({"port": 8443, "host": "10.1.2.3"}, "https://localhost:8443",
     "tokens.issuer: host localhost cannot be server.host 10.1.2.3"),
    ({"port": 8443}, "https://localhost:8443", None),
    ({"port": 8443, "host": "0.0.0.0"}, "https://gw.example.com:8443", None),
    ({"port": 0}, "https://localhost:8443", None),  # tests and the demo pick a free port
    ({"port": 8444, "trusted_proxies": ["10.0.0.0/8"]}, "https://gw.example.com", None),
])
def test_issuer_the_listener_cannot_be_is_a_warning(
        good: dict[str, object], tmp_path: Path, server: dict[str, object], issuer: str,
        warned: str | None) -> None:
    good["server"].update(server)  # type: ignore[attr-defined]
    good["tokens"]["issuer"] = issuer  # type: ignore[index]
    warnings = _warnings(good, tmp_path)
    if warned is None:
        assert warnings == ()
    else:
        assert any(w.startswith(warned) for w in warnings), warnings
        assert all("server.trusted_proxies" in w for w in warnings)


def test_pid_file_beside_the_config_even_when_the_rest_is_invalid(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    config.write_text("server: {port: nonsense}\ntokens: {algorithm: es256}\n")
    assert pid_file_of(config) == tmp_path / "etc" / "var" / "gateway.pid"
    config.write_text("server: {pid_file: /run/gw/gateway.pid}\n")
    assert pid_file_of(config) == Path("/run/gw/gateway.pid")
    config.write_text("server: {pid_file: [a]}\n")
    with pytest.raises(ConfigError):
        pid_file_of(config)
