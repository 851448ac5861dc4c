"""deploy/systemd/gateway.service: accepted by ``systemd-analyze verify`` and ``security``,
and saying what docs/deploy.md promises: reload through ``gateway reload``, a stop that
waits for the drain, the state directory the image uses, the descriptors the connection
cap needs, and the sandbox."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "gateway.service"
SYSUSERS = REPO / "deploy" / "systemd" / "gateway.sysusers"
INSTALLED = "/opt/gateway/bin/gateway"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian's systemd package; .ci/run installs it)")


def _service() -> dict[str, list[str]]:
    """Every [Service] key with all its values, in order (keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on ``text``, with the installed path of the console
    script replaced by this venv's (verify checks that the command exists)."""
    unit = tmp_path / "gateway.service"
    unit.write_text(text.replace(INSTALLED, str(Path(sys.prefix) / "bin" / "gateway")))
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False, cwd=tmp_path)


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit_and_refuses_a_broken_one(
        tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert INSTALLED in text
    done = _verify(tmp_path, text)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr
    # The same check sees mistakes: a misspelt value, a command that is not there.
    misspelt = _verify(tmp_path, text.replace("KillMode=mixed", "KillMode=mixd"))
    assert "Failed to parse kill mode specification, ignoring: mixd" in misspelt.stderr
    absent = _verify(tmp_path, text.replace(f"ExecStart={INSTALLED}", "ExecStart=/nowhere/gw"))
    assert absent.returncode != 0 and "/nowhere/gw" in absent.stderr


@needs_systemd_analyze
def test_sandbox_exposure_is_low(tmp_path: Path) -> None:
    """Exposure 0-10 as systemd rates it, the threshold in tenths: at most 2.5 ("OK")."""
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=25",
                           "--no-pager", str(UNIT)], capture_output=True, text=True,
                          timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Overall exposure level for gateway.service" in done.stdout


def test_reload_stop_state_and_limits_match_the_gateway() -> None:
    service = _service()
    assert service["ExecStart"] == [f"{INSTALLED} serve -c /etc/gateway/config.yaml"]
    assert service["ExecReload"] == [f"{INSTALLED} reload -c /etc/gateway/config.yaml"]
    # The drain: 30 s per worker, 35 s under the supervisor; systemd must wait longer.
    assert service["KillSignal"] == ["SIGTERM"] and service["KillMode"] == ["mixed"]
    assert int(service["TimeoutStopSec"][0]) > 35
    # State where GATEWAY_STATE_DIR points: relative pid, state and spool paths.
    assert service["StateDirectory"] == ["gateway"]
    assert service["Environment"] == ["GATEWAY_STATE_DIR=/var/lib/gateway"]
    # 4,096 connections per process need (4,096 * 2) + 64 descriptors (connections.py).
    assert int(service["LimitNOFILE"][0]) >= 4096 * 2 + 64
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "User": "gateway"}.items():
        assert service[key] == [value], key
    assert service["CapabilityBoundingSet"] == [""]


def test_sysusers_creates_the_units_user() -> None:
    entries = [line.split() for line in SYSUSERS.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert [(e[0], e[1]) for e in entries] == [("u", "gateway")]
    assert "/var/lib/gateway" in entries[0]
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    assert parser["Install"]["WantedBy"] == "multi-user.target"
