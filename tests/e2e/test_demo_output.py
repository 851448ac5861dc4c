"""``gateway demo`` (the README's quick start) into a pipe, as CI and a `| tee` see it: exit
0, and every JSON log line it shows stays one whole line however long (no wrapping at a
console width), the load test names its bottleneck from the gateway's own metrics, and one
AEP push follows IRIS's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_into_a_pipe_keeps_lines_whole(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "demo", "--dir", str(tmp_path),
                             "--load-seconds", "1"], capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = [line.strip() for line in result.stdout.splitlines()
             if line.strip().startswith('{"time"')]
    assert len(shown) >= 3
    for line in shown:
        assert json.loads(line)["logger"] == "gateway.access"
    assert max(len(line) for line in shown) > 110  # longer than the console width
    assert any(line.startswith("Bottleneck: the ") for line in result.stdout.splitlines())
    # One AEP push after IRIS's: its own 24 h token, then a 10,000-profile batch on a route
    # whose body bound is its own (demo_aep.py).
    lines = result.stdout.splitlines()
    aep = next(i for i, line in enumerate(lines) if "2b. Adobe Experience Platform" in line)
    assert aep > next(i for i, line in enumerate(lines) if "2. IRIS pushes" in line)
    assert "→ 200" in lines[aep + 1] and "expires_in 86400" in lines[aep + 1]
    assert lines[aep + 2].startswith("  POST /segments/aep (10,000 profiles")
    assert "→ 200, the backend's answer relayed: received true" in lines[aep + 2]
