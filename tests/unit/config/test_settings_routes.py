"""The ``routes`` section's newer keys (docs/configuration.md): auth, payload profiles and
schemas, payload_mode, signature keys, timeouts and their warning, fallback delivery."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, Settings, load_text
from gateway.config.hashes import hash_opaque

SHIPPED_SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "partner-example.json"


@pytest.fixture
def config(cert_dir: Path, signing_keys: dict[str, Path]) -> dict[str, Any]:
    return {
        "server": {"tls": {"cert_file": str(cert_dir / "server.crt"),
                           "key_file": str(cert_dir / "server.key")}},
        "tokens": {"keys": [{"kid": "k1", "private_key_file": str(signing_keys["ES256"])}]},
        "clients": [{"client_id": "aam", "credential_hash": hash_opaque("x" * 40),
                     "scopes": ["s"]}],
        "routes": [{"path": "/segments/aam", "upstream": "http://127.0.0.1:8081/x"}],
    }


def load_route(config: dict[str, Any], tmp_path: Path, **route: Any) -> Settings:
    config["routes"][0].update(route)
    return load_text(yaml.safe_dump(config), tmp_path / "config.yaml", {})


def errors(config: dict[str, Any], tmp_path: Path, **route: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_route(config, tmp_path, **route)
    return caught.value.errors


def test_defaults_fit_iris(config: dict[str, Any], tmp_path: Path) -> None:
    settings = load_route(config, tmp_path)
    route = settings.routes[0]
    assert (route.auth, route.payload, route.payload_mode) == ("bearer", "aam-segments",
                                                               "enforce")
    assert route.timeout_seconds == 2.5 and route.delivery == "direct" and not route.spools
    assert settings.server.max_body_bytes == 1 << 20
    assert settings.warnings == ()


@pytest.mark.parametrize(("delivery", "timeout"), [("spool", 10.0), ("fallback", 10.0)])
def test_a_spooling_route_waits_longer_for_its_deliveries(
        config: dict[str, Any], tmp_path: Path, delivery: str, timeout: float) -> None:
    route = load_route(config, tmp_path, delivery=delivery).routes[0]
    assert route.timeout_seconds == timeout and route.spools
    assert route.spool_after_seconds == 2.0


def test_a_direct_route_at_3_s_or_more_is_a_warning_not_an_error(
        config: dict[str, Any], tmp_path: Path) -> None:
    assert load_route(config, tmp_path, timeout_seconds=2.9).warnings == ()
    warned = load_route(config, tmp_path, timeout_seconds=3).warnings
    assert len(warned) == 1 and warned[0].startswith("routes[0].timeout_seconds: 3 s on a direct")
    assert load_route(config, tmp_path, timeout_seconds=30, delivery="spool").warnings == ()


def test_check_config_prints_the_timeout_warning_and_exits_0(
        config: dict[str, Any], tmp_path: Path) -> None:
    config["routes"][0]["timeout_seconds"] = 10
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "gateway", "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "warning: routes[0].timeout_seconds: 10 s on a direct route" in done.stderr


def test_spool_after_seconds_is_for_fallback_routes_and_leaves_time_to_spool(
        config: dict[str, Any], tmp_path: Path) -> None:
    assert load_route(config, tmp_path, delivery="fallback",
                      spool_after_seconds=1.5).routes[0].spool_after_seconds == 1.5
    assert "routes[0].spool_after_seconds: applies to delivery: fallback only" in errors(
        config, tmp_path, delivery="spool", spool_after_seconds=1.5)
    assert "routes[0].spool_after_seconds: must be at most 2.5" in errors(
        config, tmp_path, delivery="fallback", spool_after_seconds=2.9)


def test_signature_defaults_to_adobes_sha1_and_takes_a_list_of_keys(
        config: dict[str, Any], tmp_path: Path) -> None:
    signature = load_route(config, tmp_path, signature={"keys": ["old", "new"]}).routes[0].signature
    assert signature is not None
    assert (signature.header, signature.algorithm, signature.keys) == (
        "X-Signature", "sha1", ("old", "new"))
    assert "new" not in repr(signature)  # keys are secrets


def test_the_single_key_of_older_files_still_loads(config: dict[str, Any],
                                                   tmp_path: Path) -> None:
    signature = load_route(config, tmp_path, signature={"key": "k", "algorithm": "sha256"}
                           ).routes[0].signature
    assert signature is not None and signature.keys == ("k",)


@pytest.mark.parametrize(("signature", "expected"), [
    ({"key": "a", "keys": ["b"]}, "routes[0].signature: give keys (a list) or key (one), not both"),
    ({"keys": []}, "routes[0].signature.keys: must not be empty"),
    ({}, "routes[0].signature.keys: is required"),
    ({"keys": ["a"], "algorithm": "sha512"}, "routes[0].signature.algorithm: must be one of "
                                             "'sha1', 'sha256', 'md5'"),
])
def test_bad_signatures_are_errors(config: dict[str, Any], tmp_path: Path,
                                   signature: dict[str, Any], expected: str) -> None:
    # An enumeration's error may end with a "did you mean" hint.
    assert any(e.startswith(expected) for e in errors(config, tmp_path, signature=signature))


def test_auth_signature_needs_a_signature_and_ignores_the_scope(
        config: dict[str, Any], tmp_path: Path) -> None:
    assert "routes[0].signature: is required with auth: signature" in errors(
        config, tmp_path, auth="signature")
    settings = load_route(config, tmp_path, auth="signature", scope="s",
                          signature={"keys": ["k"]})
    assert settings.routes[0].auth == "signature"
    assert settings.warnings == ("routes[0].scope: ignored with auth: signature "
                                 "(no bearer token is asked for)",)


@pytest.mark.parametrize("payload", ["aam-segments", "aam-segments-strict", "none"])
def test_named_payload_profiles(config: dict[str, Any], tmp_path: Path, payload: str) -> None:
    assert load_route(config, tmp_path, payload=payload, payload_mode="report"
                      ).routes[0].payload == payload


def test_unknown_profile_and_mode_are_errors(config: dict[str, Any], tmp_path: Path) -> None:
    found = errors(config, tmp_path, payload="xml", payload_mode="warn")
    assert any(e.startswith("routes[0].payload: must be one of 'aam-segments'") for e in found)
    assert "routes[0].payload_mode: must be one of 'enforce', 'report'" in found


def test_the_shipped_example_schema_loads(config: dict[str, Any], tmp_path: Path) -> None:
    route = load_route(config, tmp_path, payload={"schema": str(SHIPPED_SCHEMA)}).routes[0]
    assert route.payload == "schema" and route.payload_schema is not None
    assert route.payload_schema.path == SHIPPED_SCHEMA


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "routes[0].payload.schema: not a JSON file: JSONDecodeError"),
    ('{"type": 5}', "routes[0].payload.schema: not a valid JSON Schema: "),
    ('{"pattern": "(("}', "routes[0].payload.schema: not a valid JSON Schema: "),
    ('[1, 2]', "routes[0].payload.schema: not a valid JSON Schema: must be a JSON object"),
    # Never fetched: a schema that needs another document over the network is refused.
    ('{"$ref": "https://schemas.example/other.json"}',
     "routes[0].payload.schema: not a valid JSON Schema: "),
])
def test_a_bad_schema_fails_check_config_with_its_path(
        config: dict[str, Any], tmp_path: Path, text: str, reason: str) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(text)
    found = errors(config, tmp_path, payload={"schema": "schema.json"})
    assert any(e.startswith(reason) for e in found), found


def test_a_missing_schema_file_and_unknown_keys_are_errors(
        config: dict[str, Any], tmp_path: Path) -> None:
    found = errors(config, tmp_path, payload={"schema": "nowhere.json", "draft": 7})
    assert any(e.startswith("routes[0].payload.schema: file not found") for e in found)
    assert "routes[0].payload.draft: unknown key" in found


def test_a_schema_with_a_local_ref_loads(config: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({
        "$defs": {"id": {"type": "string"}}, "properties": {"device": {"$ref": "#/$defs/id"}}}))
    assert load_route(config, tmp_path, payload={"schema": "s.json"}).routes[0].payload_schema
