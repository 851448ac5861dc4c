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


SHIPPED = Path(__file__).resolve().parents[3] / "config.yaml"


def _paste_under(marker: str, snippet: str) -> str:
    """The shipped config.yaml with ``snippet`` pasted, as printed, on the line after
    ``marker`` (what an operator does in an editor)."""
    text = SHIPPED.read_text()
    at = text.index("\n", text.index(marker) + len(marker)) + 1  # the next line
    return text[:at] + snippet + text[at:]


@pytest.mark.parametrize("options", [{"opaque": False}, {"opaque": True},
                                     {"opaque": False, "post": True}])
def test_client_add_snippet_pastes_under_clients(capsys: pytest.CaptureFixture[str],
                                                 options: dict[str, bool]) -> None:
    assert client_add("partner", ["segments:write", "read"], **options) == 0
    snippet = capsys.readouterr().out.partition("\n\n")[2]
    assert snippet.startswith("  ")  # a list item at the shipped file's indentation
    tree = yaml.safe_load(_paste_under("\nclients:", snippet))
    added, shipped = tree["clients"]
    assert shipped["client_id"] == "aam"
    assert added["client_id"] == "partner"
    assert added["scopes"] == ["segments:write", "read"]
    assert added.get("client_secret_post", False) is options.get("post", False)


def test_client_add_post_needs_the_rfc_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert client_add("partner", ["s"], opaque=True, post=True) == 2
    assert "--post" in capsys.readouterr().err


def test_keys_generate_snippet_pastes_under_tokens_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys_generate("ES256", "k2", tmp_path / "k2.pem") == 0
    tree = yaml.safe_load(_paste_under("\n  keys:", capsys.readouterr().out))
    assert [k["kid"] for k in tree["tokens"]["keys"]] == ["k2", "dev-1"]


def _on_a_terminal(typed: list[bytes]) -> tuple[int, str]:
    """``gateway hash-secret`` with a pseudo-terminal as its terminal; types ``typed`` at
    each prompt; (exit status, everything the terminal showed)."""
    import os
    import pty
    import select
    import sys
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.execv(sys.executable, [sys.executable, "-m", "gateway", "hash-secret"])  # noqa: S606
    shown, answers, deadline = b"", list(typed), time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if answers and shown.endswith(b": "):  # a prompt waits for input
                    os.write(fd, answers.pop(0))
            elif os.waitpid(pid, os.WNOHANG) != (0, 0):
                break
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_hash_secret_prompts_without_echo_at_a_terminal() -> None:
    code, shown = _on_a_terminal([b"typed-secret-value\n", b"typed-secret-value\n"])
    assert code == 0, shown
    assert "secret (not echoed):" in shown and "again:" in shown
    assert "typed-secret-value" not in shown  # not echoed
    hashed = shown.strip().splitlines()[-1].strip()
    assert parse_hash(hashed).verify("typed-secret-value")
    code, shown = _on_a_terminal([b"one\n", b"two\n"])
    assert code == 2 and "differ" in shown


def test_hash_secret_still_reads_a_pipe() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "gateway", "hash-secret", "--opaque"],
                            input="piped-credential", capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == hash_opaque("piped-credential")
