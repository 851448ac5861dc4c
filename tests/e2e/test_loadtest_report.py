"""``gateway loadtest --report FILE.html`` against the real gateway
(docs/operations.md#the-load-test): the file is self-contained, a real headless browser
renders its charts, and every figure it shows is the one ``--json`` printed in the same run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.config import Settings
from gateway.serve.server import RunningGateway

from e2e_harness import CLIENT_ID, CLIENT_SECRET, base_config

pytestmark = pytest.mark.slow


def _expected(doc: dict[str, Any], key: str) -> str:
    value: Any = doc
    for part in key.split("."):
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value)


async def test_the_report_renders_its_charts_and_shows_the_json_figures(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        backend: tuple[str, web.Application],
        write_config: Callable[[dict[str, Any]], Settings],
        start: Callable[[Settings], Awaitable[RunningGateway]], browser: Any,
        screenshots: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By

    gateway = await start(write_config(base_config(cert_dir, signing_keys, secret_hash,
                                                   backend[0] + "/segments/aam")))
    report = tmp_path / "out" / "report.html"
    # A subprocess: the gateway answers from this test's event loop meanwhile.
    process = await _run([sys.executable, "-m", "gateway", "loadtest",
                          f"https://localhost:{gateway.ports['https']}/segments/aam",
                          "--ca", str(cert_dir / "ca.crt"), "--client-id", CLIENT_ID,
                          "--secret", CLIENT_SECRET, "--requests", "300", "--duration", "20",
                          "--concurrency", "4", "--rate", "200", "--json",
                          "--report", str(report)])
    assert process.returncode == 0, process.stderr
    doc = json.loads(process.stdout)
    assert doc["requests"] == 300 and doc["status_counts"] == {"200": 300}
    html = report.read_text()
    # Self-contained: nothing to fetch (no src=, no href=, no url() in the style).
    assert not re.search(r"\b(src|href)\s*=|url\(|@import", html)
    embedded = html.split('<script type="application/json" id="report">', 1)[1]
    assert json.loads(embedded.split("</script>", 1)[0].replace("<\\/", "</")) == doc

    browser.get(report.as_uri())
    shown = browser.find_elements(By.CSS_SELECTOR, "td[data-key]")
    keys = {cell.get_attribute("data-key") for cell in shown}
    assert {"requests", "requests_per_s", "latency_ms.p50", "latency_ms.p99",
            "status_counts.200", "success_rate"} <= keys
    for cell in shown:
        assert cell.text == _expected(doc, cell.get_attribute("data-key")), cell.text
    for chart in ("throughput", "latency"):
        lines = browser.find_elements(By.CSS_SELECTOR, f'figure[data-chart="{chart}"] polyline')
        # At least two points each: a line, not a dot (paced at 200/s, the run lasts 1.5 s:
        # many buckets, however fast the machine).
        assert lines and all(len(line.get_attribute("points").split()) >= 2 for line in lines)
        box = browser.find_element(By.CSS_SELECTOR, f'figure[data-chart="{chart}"] svg')
        assert box.size["width"] > 300 and box.size["height"] > 100  # drawn, not collapsed
    bars = browser.find_elements(By.CSS_SELECTOR, 'figure[data-chart="histogram"] rect')
    heights = [float(bar.get_attribute("height")) for bar in bars]
    assert len(bars) == 30 and sum(1 for h in heights if h > 0) >= 1
    screenshots(browser, "loadtest-report")


async def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    import asyncio

    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return subprocess.CompletedProcess(argv, process.returncode or 0, out.decode(),
                                       err.decode())
