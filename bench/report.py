"""The benchmark's output: one Markdown report (stdout and bench/results/<date>.md) and JSON.

The header carries what a reader needs to trust or distrust the numbers: date, machine
(cores and CPU model from /proc/cpuinfo), versions of every program measured, the exact
command, and how the load was generated. A row with non-2xx answers or socket errors is
flagged in its own column, never silently averaged in.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Row", "machine", "ratios", "render", "save"]


@dataclass(slots=True)
class Row:
    """One measured (or skipped) row of the table."""

    key: str
    label: str
    payload: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    proxy_cpu_s_per_1k: float | None = None
    backend_cpu_s_per_1k: float | None = None
    backend_seen: int | None = None
    non_2xx: int = 0
    socket_errors: int = 0
    ratio: float | None = None  # req/s against HAProxy ES256 on the same payload
    ratio_fastest: float | None = None  # ... and against HAProxy's fastest JWT row
    tool: str = ""
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return self.skipped is None and (self.non_2xx > 0 or self.socket_errors > 0
                                         or self.requests == 0)


def ratios(rows: list[Row]) -> None:
    """Each row's req/s against HAProxy ES256 and against HAProxy's fastest JWT row (of
    those run: HS256, RS256, ES256) on the same payload; the token rows' ratio as a note."""
    measured = [r for r in rows if r.skipped is None and r.rps > 0]
    es256 = {r.payload: r.rps for r in measured if r.key == "haproxy-es256"}
    fastest: dict[str, float] = {}
    for r in measured:
        if r.key.startswith("haproxy-"):
            fastest[r.payload] = max(fastest.get(r.payload, 0.0), r.rps)
    for row in measured:
        if row.payload in es256:
            row.ratio = row.rps / es256[row.payload]
        if row.payload in fastest:
            row.ratio_fastest = row.rps / fastest[row.payload]
    tokens = {r.key: r.rps for r in measured if r.key.startswith("token-")}
    if len(tokens) == 2:
        for row in measured:
            if row.key == "token-gateway":
                row.notes.append(f"{tokens['token-gateway'] / tokens['token-oidc']:.2f} x "
                                 "oidc-provider")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": sys.version.split()[0], "aiohttp": aiohttp.__version__}


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _table(rows: list[Row]) -> str:
    out = ["| row | payload | req/s | p50 ms | p99 ms | proxy CPU s/1k req | "
           "backend CPU s/1k req | x HAProxy-JWT fastest | x HAProxy-JWT ES256 | check |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.skipped is not None:
            out.append(f"| {r.label} | {r.payload} | skipped | | | | | | | {r.skipped} |")
            continue
        check = (f"⚠ {r.non_2xx} non-2xx, {r.socket_errors} socket errors" if r.flagged
                 else f"{r.requests:,} x 2xx")
        if r.notes:
            check += "; " + "; ".join(r.notes)
        out.append(
            f"| {r.label} | {r.payload} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{_num(r.proxy_cpu_s_per_1k, '.3f')} | {_num(r.backend_cpu_s_per_1k, '.3f')} | "
            f"{_num(r.ratio_fastest, '.2f')} | {_num(r.ratio, '.2f')} | {check} |")
    return "\n".join(out)


def render(meta: dict[str, Any], rows: list[Row], micro_md: str | None) -> str:
    m = meta["machine"]
    lines = [
        f"# Gateway benchmark, {meta['date']}",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {m['cores']} cores, {m['cpu_model']}, Linux {m['kernel']}; "
        f"Python {m['python']}, aiohttp {m['aiohttp']}",
        "- versions: " + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()),
        f"- load: {meta['load']}",
        "- **wrk, the sample backend (one Python process) and the proxy under test share the "
        f"same {m['cores']} cores on loopback**: req/s is what this box does with all three "
        "on it; the CPU columns (utime+stime from /proc of that process tree only, per 1,000 "
        "requests = ms per request) are the cost that carries over to other machines.",
        "- every row goes to the same backend; direct and nginx rows check no token; HAProxy "
        "verifies the JWT (alg, typ, signature, iss, aud, exp) but not the payload; the "
        "gateway does all of docs/architecture.md including the aam-segments validation.",
        "",
        _table(rows),
    ]
    if meta.get("skipped"):
        lines += ["", "Skipped:"] + [f"- {s}" for s in meta["skipped"]]
    if meta.get("checks"):
        lines += ["", "Checks before measuring:"] + [f"- {c}" for c in meta["checks"]]
    if micro_md:
        lines += ["", "## Micro-benchmarks (in-process, one core)", "", micro_md]
    return "\n".join(lines) + "\n"


def save(results_dir: Path, meta: dict[str, Any], rows: list[Row],
         micro: list[dict[str, Any]] | None, markdown: str) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    md_path = results_dir / f"{stamp}.md"
    json_path = results_dir / f"{stamp}.json"
    md_path.write_text(markdown)
    json_path.write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows],
                                     "micro": micro}, indent=2) + "\n")
    return md_path, json_path
