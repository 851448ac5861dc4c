"""``gateway check-config`` on a mutated copy of the shipped ``config.yaml``: whatever the
operator writes (a wrong type, a value out of range, an enumeration in the wrong case or
unknown, a missing file, a deleted or misspelt key), the answer is exit 0 or exit 2 with
``path: reason`` lines, never a traceback.

Hypothesis drives ``check_config`` in-process (what ``gateway check-config`` calls) for
speed; two subprocess cases check the real command's output.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.serve.control import check_config

SHIPPED = Path(__file__).resolve().parents[3] / "config.yaml"
# Every enumerated value the file may hold, and near misses of them.
ENUMERATIONS = ["ES256", "RS256", "EdDSA", "HS256", "es256", "ES512", "none", "None", "auto",
                "sqlite", "redis", "Redis", "json", "text", "debug", "info", "warning", "WARN",
                "error", "1.2", "1.3", "1.1", "direct", "spool", "fallback", "aam-segments",
                "none", "xml", "sha1", "sha256", "md5", "SHA1", "POST", "get", "TRACE"]
FILES = ["certs/missing.pem", "/nonexistent/x.crt", "config.yaml", ".", "certs",
         "~/nope.pem", "certs/server.key", "certs/server.crt", "certs/jwt-dev-1.pem"]
HASHES = ["sha256$" + "ab" * 32, "sha256$xyz",
          "scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
          "scrypt$ln=99,r=8,p=1$c2FsdA$aGFzaA", "plain-secret", "bcrypt$x"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(ENUMERATIONS), st.sampled_from(FILES), st.sampled_from(HASHES),
    st.sampled_from(["${UNSET_VARIABLE_X}", "${GATEWAY_PORT:-8444}", "${X:-}", "https://x",
                     "http://localhost:1/", "ftp://a", "10.0.0.0/33", "::1", "0.0.0.0"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["kid", "path", "x", "tls", "port", "secret", "upstream"]),
                    inner, max_size=3)), max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(tree: Any, path: tuple[Any, ...], action: str, value: Any) -> None:
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif action == "unknown key" and isinstance(parent[last], dict):
        parent[last][f"{last}_typo" if isinstance(last, str) else "typo"] = value
    elif action == "unknown key":
        parent[last] = {"unexpected": value}


@pytest.fixture(scope="module")
def shipped_dir(tmp_path_factory: pytest.TempPathFactory, cert_dir: Path,
                signing_keys: dict[str, Path]) -> Path:
    """The shipped file beside what it names: certs/server.*, certs/jwt-dev-1.pem."""
    directory = tmp_path_factory.mktemp("shipped")
    (directory / "certs").mkdir()
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(cert_dir / name, directory / "certs" / name)
    shutil.copy(signing_keys["ES256"], directory / "certs" / "jwt-dev-1.pem")
    shutil.copy(SHIPPED, directory / "config.yaml")
    return directory


def _run(config: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = check_config(config)
    return code, out.getvalue(), err.getvalue()


def test_the_shipped_file_checks(shipped_dir: Path) -> None:
    code, out, err = _run(shipped_dir / "config.yaml")
    assert (code, err) == (0, ""), err
    assert "ok" in out


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_exits_0_or_2_without_a_traceback(shipped_dir: Path,
                                                         data: st.DataObject) -> None:
    tree = yaml.safe_load(SHIPPED.read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(tree)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "unknown key"]),
                           label="action")
        _mutate(tree, path, action, data.draw(values, label="value"))
    config = shipped_dir / "mutated.yaml"
    config.write_text(yaml.safe_dump(tree))
    code, out, err = _run(config)  # an exception here is the failure hypothesis reports
    assert code in (0, 2), (code, out, err)
    assert "Traceback" not in out + err
    if code == 2:
        lines = err.splitlines()
        assert lines[0].endswith("error(s)")
        assert all(line.startswith("  ") and ": " in line for line in lines[1:]), err
    else:
        assert "ok" in out


@pytest.mark.parametrize("edit", ["tokens.algorithm: es256", "missing file"])
def test_the_command_answers_exit_2_with_the_path(shipped_dir: Path, edit: str) -> None:
    text = (shipped_dir / "config.yaml").read_text()
    config = shipped_dir / "edited.yaml"
    if edit == "missing file":
        config.unlink(missing_ok=True)
        expected = "file not found"
    else:
        config.write_text(text.replace("algorithm: ES256", "algorithm: es256"))
        expected = ("tokens.algorithm: must be one of 'ES256', 'RS256', 'EdDSA', 'HS256' "
                    "(did you mean 'ES256'?)")
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", "-c", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
