"""``gateway loadtest --report FILE.html``: one self-contained HTML file (docs/operations.md).

It holds the run's parameters and summary, the status mix, throughput over time, latency
percentiles over time and a latency histogram, drawn as inline SVG: no script, no font, no
stylesheet from anywhere else, so the file opens offline and can be mailed. Every figure in
the summary is the very value ``--json`` prints (``LoadReport.to_dict``, embedded in the
file as ``<script type="application/json" id="report">``), written as JSON writes it. The
time series come from each answered push's completion time, latency and status
(``LoadSamples``), grouped in buckets of 0.1 s to 60 s (at most about 120 per run);
a bucket's percentiles are nearest-rank, as the summary's.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.tools.loadtest_report import percentile

if TYPE_CHECKING:
    from gateway.tools.loadtest_report import LoadReport

__all__ = ["LoadSamples", "render_html", "write_report"]

_STEPS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_COLOURS = ("#1565c0", "#ef6c00", "#c62828", "#2e7d32")
_W, _H, _PAD = 640.0, 220.0, 44.0


@dataclass(slots=True)
class LoadSamples:
    """Per answered push: seconds since the run began at completion, latency, status."""

    ends: array[float] = field(default_factory=lambda: array("d"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    statuses: array[int] = field(default_factory=lambda: array("H"))

    def add(self, end: float, latency: float, status: int) -> None:
        self.ends.append(end)
        self.latencies.append(latency)
        self.statuses.append(status)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _buckets(samples: LoadSamples, duration: float) -> tuple[float, list[dict[str, Any]]]:
    step = next((s for s in _STEPS if duration / s <= 120), _STEPS[-1])
    # A short tail joins the last bucket: a rate over a few milliseconds means nothing.
    count = max(1, round(duration / step))
    groups: list[list[int]] = [[] for _ in range(count)]
    for index, end in enumerate(samples.ends):
        groups[min(count - 1, max(0, int(end // step)))].append(index)
    rows = []
    for number, members in enumerate(groups):
        ordered = sorted(samples.latencies[i] * 1000 for i in members)
        ok = sum(1 for i in members if samples.statuses[i] == 200)
        last = number == count - 1
        width = max(duration - number * step, 1e-3) if last else step
        rows.append({"t": duration if last else (number + 1) * step,
                     "per_s": len(members) / width,
                     "ok_per_s": ok / width,
                     "p50": percentile(ordered, 50) if ordered else None,
                     "p90": percentile(ordered, 90) if ordered else None,
                     "p99": percentile(ordered, 99) if ordered else None})
    return step, rows


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(top))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= top))


def _axes(x_max: float, y_max: float, x_label: str, y_label: str) -> str:
    parts = [f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - 8}" y2="{_H - _PAD}" '
             'stroke="#888"/>',
             f'<line x1="{_PAD}" y1="8" x2="{_PAD}" y2="{_H - _PAD}" stroke="#888"/>']
    for i in range(5):
        y = _H - _PAD - (_H - _PAD - 8) * i / 4
        parts.append(f'<text x="{_PAD - 4}" y="{y + 3:.1f}" text-anchor="end">'
                     f"{y_max * i / 4:.4g}</text>")
        x = _PAD + (_W - 8 - _PAD) * i / 4
        parts.append(f'<text x="{x:.1f}" y="{_H - _PAD + 14}" text-anchor="middle">'
                     f"{x_max * i / 4:.3g}</text>")
    parts.append(f'<text x="{(_W + _PAD) / 2:.0f}" y="{_H - 8}" text-anchor="middle">'
                 f"{_e(x_label)}</text>")
    parts.append(f'<text x="12" y="{(_H - _PAD) / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {(_H - _PAD) / 2:.0f})">{_e(y_label)}</text>')
    return "".join(parts)


def _line_chart(key: str, title: str, xs: Sequence[float],
                series: Sequence[tuple[str, Sequence[float | None]]], x_max: float,
                y_label: str) -> str:
    top = _nice(max((v for _, values in series for v in values if v is not None), default=0))
    body = [_axes(x_max, top, "seconds into the run", y_label)]
    legend = []
    for number, (name, values) in enumerate(series):
        colour = _COLOURS[number % len(_COLOURS)]
        points = " ".join(
            f"{_PAD + (_W - 8 - _PAD) * x / (x_max or 1):.1f},"
            f"{_H - _PAD - (_H - _PAD - 8) * v / top:.1f}"
            for x, v in zip(xs, values, strict=True) if v is not None)
        body.append(f'<polyline data-series="{_e(name)}" fill="none" stroke="{colour}" '
                    f'stroke-width="1.8" points="{points}"/>')
        legend.append(f'<span class="key"><i class="c{number}"></i>{_e(name)}</span>')
    return (f'<figure data-chart="{_e(key)}"><figcaption>{_e(title)} {"".join(legend)}'
            f'</figcaption><svg viewBox="0 0 {_W:.0f} {_H:.0f}" width="{_W:.0f}" '
            f'height="{_H:.0f}" role="img" aria-label="{_e(title)}">{"".join(body)}</svg>'
            "</figure>")


def _histogram(latencies_ms: Sequence[float]) -> str:
    if not latencies_ms:
        return '<p data-chart="histogram">No answered pushes: no histogram.</p>'
    low, high = max(min(latencies_ms), 0.01), max(max(latencies_ms), 0.02)
    bins = 30
    ratio = (high / low) ** (1 / bins) if high > low else 2.0
    edges = [low * ratio ** i for i in range(bins + 1)]
    counts = Counter(min(bins - 1, max(0, int(math.log(max(v, low) / low, ratio))))
                     for v in latencies_ms)
    top = _nice(max(counts.values()))
    width = (_W - 8 - _PAD) / bins
    bars = []
    for i in range(bins):
        height = (_H - _PAD - 8) * counts.get(i, 0) / top
        bars.append(f'<rect x="{_PAD + i * width + 1:.1f}" y="{_H - _PAD - height:.1f}" '
                    f'width="{width - 2:.1f}" height="{height:.1f}" fill="#1565c0">'
                    f"<title>{edges[i]:.3g} to {edges[i + 1]:.3g} ms: {counts.get(i, 0)}</title>"
                    "</rect>")
    labels = "".join(
        f'<text x="{_PAD + i * width:.1f}" y="{_H - _PAD + 14}" text-anchor="middle">'
        f"{edges[i]:.3g}</text>" for i in range(0, bins + 1, 6))
    axis = (f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - 8}" y2="{_H - _PAD}" stroke="#888"/>'
            f'<text x="{_PAD - 4}" y="12" text-anchor="end">{top:g}</text>'
            f'<text x="{(_W + _PAD) / 2:.0f}" y="{_H - 8}" text-anchor="middle">latency, ms '
            "(logarithmic bins)</text>")
    return (f'<figure data-chart="histogram"><figcaption>Latency histogram</figcaption>'
            f'<svg viewBox="0 0 {_W:.0f} {_H:.0f}" width="{_W:.0f}" height="{_H:.0f}" '
            f'role="img" aria-label="latency histogram">{"".join(bars)}{labels}{axis}</svg>'
            "</figure>")


def _value(doc: dict[str, Any], path: str) -> str:
    value: Any = doc
    for part in path.split("."):
        value = value[part]
    shown = value if isinstance(value, str) else json.dumps(value)
    return f'<td data-key="{_e(path)}">{_e(shown)}</td>'


def _table(doc: dict[str, Any], rows: Sequence[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(
        f"<tr><th>{_e(label)}</th>{_value(doc, path)}</tr>" for label, path in rows) + "</table>"


_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:1em 2em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse}
.kv th{text-align:left;font-weight:normal;color:#555;padding:.1em 1.5em .1em 0}
.kv td{font-family:monospace}.grid td,.grid th{border-bottom:1px solid #ddd;padding:.2em .8em}
svg text{font-size:11px;fill:#444}figure{margin:1em 0}figcaption{font-weight:600}
.key{font-weight:normal;margin-left:1em}.key i{display:inline-block;width:.9em;height:.9em;
margin-right:.3em;vertical-align:middle}.c0{background:#1565c0}.c1{background:#ef6c00}
.c2{background:#c62828}.c3{background:#2e7d32}.note{background:#fff3e0;padding:.4em 1em}
.cols{display:flex;gap:4em;flex-wrap:wrap}"""


def render_html(report: LoadReport, samples: LoadSamples | None = None) -> str:
    doc = report.to_dict()
    samples = samples or LoadSamples()
    step, rows = _buckets(samples, max(report.duration_s, 1e-9))
    xs = [r["t"] for r in rows]
    x_max = xs[-1] if xs else 1.0
    statuses = "".join(f'<tr><td>{_e(code)}</td><td data-key="status_counts.{_e(code)}">'
                       f"{_e(json.dumps(n))}</td></tr>" for code, n in doc["status_counts"].items())
    errors = "".join(f'<tr><td>{_e(kind)}</td><td data-key="errors.{_e(kind)}">'
                     f"{_e(json.dumps(n))}</td></tr>" for kind, n in doc["errors"].items())
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in doc["notes"])
    if doc["simulator"]["bottleneck"]:
        notes += ('<p class="note">The simulator used most of a core: the rate is a lower '
                  "bound for the gateway.</p>")
    embedded = json.dumps(doc, sort_keys=True).replace("</", "<\\/")
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>load test: {_e(report.url)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{'AEP' if report.profile == 'aep' else 'IRIS'} simulator: load report</h1>"
        f"<p>{_e(report.method)} {_e(report.url)}, "
        f"written {when}</p>{notes}"
        '<div class="cols"><div><h2>Parameters</h2>' + _table(doc, [
            ("url", "url"), ("method", "method"), ("concurrency", "concurrency"),
            ("profiles per request" if report.profile == "aep" else "users per request",
             "users_per_request"), ("rate (req/s, null: unpaced)", "rate")])
        + '<h2>Status mix</h2><table class="grid" id="statuses"><tr><th>status</th>'
        f"<th>count</th></tr>{statuses}</table>"
        + (f'<h2>Errors</h2><table class="grid" id="errors">{errors}</table>' if errors else "")
        + "</div><div><h2>Summary</h2>" + _table(doc, [
            ("requests", "requests"), ("duration (s)", "duration_s"),
            ("requests/s", "requests_per_s"), ("successes (200)", "successes"),
            ("success rate", "success_rate"), ("latency p50 (ms)", "latency_ms.p50"),
            ("latency p90 (ms)", "latency_ms.p90"), ("latency p99 (ms)", "latency_ms.p99"),
            ("latency max (ms)", "latency_ms.max"), ("latency mean (ms)", "latency_ms.mean"),
            ("token fetches", "token_fetches"), ("token failures", "token_failures"),
            ("simulator CPU (s)", "simulator.cpu_s"),
            ("simulator CPU share of a core", "simulator.cpu_utilisation")])
        + f"</div></div><h2>Over time</h2><p>Buckets of {step:g} s.</p>"
        + _line_chart("throughput", "Throughput (answers/s)", xs,
                      [("all answers", [r["per_s"] for r in rows]),
                       ("200", [r["ok_per_s"] for r in rows])], x_max, "per second")
        + _line_chart("latency", "Latency percentiles (ms)", xs,
                      [("p50", [r["p50"] for r in rows]), ("p90", [r["p90"] for r in rows]),
                       ("p99", [r["p99"] for r in rows])], x_max, "ms")
        + _histogram([v * 1000 for v in samples.latencies])
        + f'<script type="application/json" id="report">{embedded}</script></body></html>')


def write_report(report: LoadReport, samples: LoadSamples | None, path: Path) -> Path:
    """Write the HTML report to ``path`` (its folder is made); the resolved path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, samples), encoding="utf-8")
    return path.resolve()
