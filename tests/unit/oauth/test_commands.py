"""keys generate, client add and hash-secret (README.md): files, modes, printed snippets."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml

from gateway.config import SigningKeySettings
from gateway.config.hashes import hash_opaque, parse_hash
from gateway.oauth.commands import client_add, hash_secret, keys_generate
from gateway.oauth.keys import KeySet

from .conftest import token_settings


def test_keys_generate_writes_0600_and_refuses_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys" / "k1.pem"
    assert keys_generate("ES256", "k1", out) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    snippet = yaml.safe_load(capsys.readouterr().out)
    assert snippet == [{"kid": "k1", "private_key_file": str(out)}]
    KeySet.from_settings(token_settings("ES256", [SigningKeySettings(
        kid="k1", private_key_file=out)]))
    before = out.read_bytes()
    assert keys_generate("ES256", "k1", out) == 2
    assert out.read_bytes() == before
    assert "refusing to overwrite" in capsys.readouterr().err


def test_keys_generate_hs256_prints_secret_and_env_snippet(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert keys_generate("HS256", "h1", None) == 0
    secret, *rest = capsys.readouterr().out.splitlines()
    assert len(secret) >= 32
    assert yaml.safe_load("\n".join(rest)) == [{"kid": "h1", "secret": "${JWT_SECRET}"}]
    assert keys_generate("none", "x", None) == 2


def test_client_add_rfc_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert client_add("aam", ["segments:write"], opaque=False) == 0
    captured = capsys.readouterr()
    assert "shown once" in captured.err
    head, _, snippet = captured.out.partition("\n\n")
    lines = dict(line.split(": ", 1) for line in head.splitlines())
    (entry,) = yaml.safe_load(snippet)
    assert set(entry) == {"client_id", "secret_hash", "scopes"}
    assert lines["client_secret"] not in snippet  # only the hash is in the snippet
    assert parse_hash(entry["secret_hash"]).verify(lines["client_secret"])
    pair = base64.b64decode(lines["Authorization"].removeprefix("Basic ")).decode()
    assert pair == f"aam:{lines['client_secret']}"


def test_client_add_opaque(capsys: pytest.CaptureFixture[str]) -> None:
    assert client_add("iris", ["a", "b"], opaque=True) == 0
    head, _, snippet = capsys.readouterr().out.partition("\n\n")
    lines = dict(line.split(": ", 1) for line in head.splitlines())
    (entry,) = yaml.safe_load(snippet)
    assert entry == {"client_id": "iris", "credential_hash": hash_opaque(lines["credential"]),
                     "scopes": ["a", "b"]}
    assert len(base64.urlsafe_b64decode(lines["credential"] + "=")) == 32  # 256 bits
    assert lines["Authorization"] == f"Basic {lines['credential']}"
    assert client_add("x", ["bad scope"], opaque=True) == 2


def test_hash_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert hash_secret("abc\n\n", opaque=True) == 0
    assert capsys.readouterr().out.strip() == hash_opaque("abc\n")  # one newline only
    assert hash_secret("abc\r\n", opaque=True) == 0
    assert capsys.readouterr().out.strip() == hash_opaque("abc")
    assert hash_secret("\n", opaque=False) == 2
    assert hash_secret("", opaque=True) == 2
