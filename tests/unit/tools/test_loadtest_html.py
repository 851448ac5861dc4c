"""The load-test HTML report (tools/loadtest_html.py): self-contained, the --json figures,
buckets that never turn a last few milliseconds into a rate, and a clear error when the file
cannot be written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.tools.loadtest_html import LoadSamples, _buckets, render_html
from gateway.tools.loadtest_report import LatencySummary, LoadReport


def _report(samples: LoadSamples, duration: float) -> LoadReport:
    latencies = list(samples.latencies)
    return LoadReport(url="https://127.0.0.1:8443/segments/aam", method="POST", concurrency=4,
                      users_per_request=10, rate=None, requests=len(latencies),
                      duration_s=duration, latency_ms=LatencySummary.from_seconds(latencies),
                      status_counts={200: len(latencies) - 1, 503: 1}, errors={"timeout": 2},
                      token_fetches=1, cpu_s=0.5, cpu_count=2, samples=samples)


def test_the_report_embeds_the_json_and_draws_every_second() -> None:
    samples = LoadSamples()
    for i in range(500):  # 100 answers a second for 5.01 s, one of them a 503
        samples.add(i / 100 + 0.01, 0.002 + (i % 10) / 1000, 503 if i == 7 else 200)
    report = _report(samples, 5.01)
    html = render_html(report, samples)
    embedded = html.split('id="report">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded) == report.to_dict()
    assert 'data-key="status_counts.503">1<' in html and 'data-key="errors.timeout">2<' in html
    assert "<link" not in html and "src=" not in html  # nothing to fetch
    throughput = html.split('data-chart="throughput"', 1)[1].split("</figure>", 1)[0]
    assert throughput.count("<polyline") == 2  # all answers, and the 200s
    step, rows = _buckets(samples, 5.01)
    assert step == 0.1 and len(rows) == 50  # the last 10 ms join the last bucket
    assert all(90 <= row["per_s"] <= 110 for row in rows), [r["per_s"] for r in rows]
    assert rows[-1]["t"] == 5.01


def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    for target in (blocker / "r.html", tmp_path):
        code = main(["loadtest", "https://127.0.0.1:1/segments/aam", "--client-id", "a",
                     "--secret", "b", "--requests", "1", "--report", str(target)])
        err = capsys.readouterr().err
        assert code == 2 and f"--report {target}" in err, err  # a usage error, no run
        assert "no token" not in err  # it never reached the token endpoint
