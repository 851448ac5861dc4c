"""The shipped monitoring works as shipped (docs/operations.md#runbook): every metric the alert
rules (deploy/prometheus/alerts.yml) and the Grafana dashboard (deploy/grafana/gateway.json)
name is exported by a real gateway (two workers under a supervisor, a spool route, real TLS)
after traffic, and by a fresh one-process gateway before any; promtool accepts the rules and
passes their unit tests; the dashboard is well-formed."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e_harness import fetch_token
from proc_harness import CapturedProcess, gateway_command
from spool_harness import free_port, push, spool_config

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gateway.json"
_NAME = re.compile(r"\b(gateway_[a-z0-9_]+)\b")


def _rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return found


def _exported(text: str) -> tuple[set[str], set[str]]:
    """(every sample name a query may use, the names that have a sample now)."""
    names: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
        sampled |= {sample.name for sample in family.samples}
    return names, sampled


@pytest.mark.slow
async def test_every_metric_the_rules_and_the_dashboard_use_is_exported(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess]) -> None:
    backend_port = free_port()
    backend = gateway_command("backend", "--port", str(backend_port))
    processes.append(backend)
    await backend.line("backend listening")
    config = spool_config(tmp_path, cert_dir, signing_keys, secret_hash, backend_port,
                          workers=2)
    gateway = gateway_command("serve", "-c", str(config))
    processes.append(gateway)
    ports = await gateway.serving(30)
    token = await fetch_token(session, ports["https"])
    assert await push(session, ports["https"], token, "monitored-1") == 200
    assert await push(session, ports["https"], "not-a-token", "monitored-2") == 401
    gateway.process.send_signal(signal.SIGHUP)  # a reload: its time is a metric too
    metrics_url = f"http://127.0.0.1:{ports['admin']}/metrics"

    async def scrape() -> str | None:
        async with aiohttp.ClientSession() as plain, plain.get(metrics_url) as response:
            text = await response.text()
        # Workers hand their counts to the supervisor once a second.
        return text if 'gateway_spool_accepted_total{route="/segments/aam"} 1.0' in text \
            and 'gateway_config_last_reload_timestamp_seconds{result="ok"}' in text else None

    text = None
    for _ in range(100):
        text = await scrape()
        if text:
            break
        await asyncio.sleep(0.1)
    assert text, "the workers' counts never reached the supervisor's /metrics"
    names, sampled = _exported(text)
    used = {name for expr in [*_rule_expressions(), *_dashboard_expressions()]
            for name in _NAME.findall(expr)}
    assert len(used) > 25  # the extraction found the metrics, not nothing
    assert sorted(used - names) == []
    # The status page sums the workers as /metrics does.
    counted = sum(sample.value for family in text_string_to_metric_families(text)
                  for sample in family.samples if sample.name == "gateway_requests_total"
                  and sample.labels["route"] == "/segments/aam")
    async with aiohttp.ClientSession() as plain, plain.get(
            f"http://127.0.0.1:{ports['admin']}/status.json") as response:
        status = await response.json()
    assert counted == 2 and status["routes"][0]["requests"] == 2
    assert status["workers"] == {"configured": 2, "running": 2, "restarts": 0}
    assert status["reload"]["last_result"] == "ok"
    # Gauges are never declared without a value; these must have one after this traffic.
    for name in ("gateway_ready", "gateway_workers", "gateway_spool_depth",
                 "gateway_tls_certificate_expiry_timestamp_seconds",
                 "gateway_upstream_reachable", "gateway_state_degraded"):
        assert name in sampled, name


@pytest.mark.slow
async def test_a_fresh_one_process_gateway_exports_what_the_rules_and_the_dashboard_use(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        processes: list[CapturedProcess]) -> None:
    """No worker, no traffic, no SIGHUP: the first scrape already has every name the rules
    and the dashboard query, ``gateway_workers`` (1) and the start-up load's time (the
    initial load counts as a reload, as Prometheus's own does)."""
    backend_port = free_port()
    config = spool_config(tmp_path, cert_dir, signing_keys, secret_hash, backend_port,
                          workers=1)
    gateway = gateway_command("serve", "-c", str(config))
    processes.append(gateway)
    ports = await gateway.serving(30)
    async with aiohttp.ClientSession() as plain, plain.get(
            f"http://127.0.0.1:{ports['admin']}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    names, sampled = _exported(text)
    used = {name for expr in [*_rule_expressions(), *_dashboard_expressions()]
            for name in _NAME.findall(expr)}
    assert len(used) > 25
    assert sorted(used - names) == []
    assert {"gateway_workers", "gateway_config_last_reload_timestamp_seconds"} <= sampled
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(text) for s in family.samples}
    assert values[("gateway_workers", ())] == 1
    loaded_at = values[("gateway_config_last_reload_timestamp_seconds", (("result", "ok"),))]
    assert abs(loaded_at - time.time()) < 120
    # Not a SIGHUP: the reload counter starts at nothing.
    assert ("gateway_config_reloads_total", (("result", "ok"),)) not in values


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; .ci/run "
                    "installs it)")
    return found


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    tested = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_a_summary_and_a_runbook_section() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"]
              if case["exp_alerts"]}
    assert sorted(set(alerts) - firing) == []
    runbook = (ROOT / "docs" / "operations.md").read_text().split("## Runbook", 1)[1]
    sections = [line[4:].strip() for line in runbook.splitlines() if line.startswith("### ")]
    assert sorted(sections) == sorted(alerts)  # one subsection per alert, named after it
    for name, rule in alerts.items():
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"


def test_the_dashboard_is_well_formed() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "instance"}
