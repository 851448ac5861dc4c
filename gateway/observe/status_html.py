"""The status page's HTML (docs/operations.md#the-status-page), rendered from the very
document ``/status.json`` serves.

The page is whole without JavaScript: every figure and chart is in the HTML as sent, the
charts inline SVG. With JavaScript, ``status_assets.SCRIPT`` fetches ``/status.json`` every
few seconds and renders the same ``<main>`` with the same markup (its functions mirror the
ones here, name for name). Nothing is loaded from anywhere else: the style and the script
are inline, under a Content-Security-Policy nonce. Every text from outside (routes, errors)
is escaped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

from gateway.observe.status_assets import SCRIPT, STYLE

__all__ = ["render_main", "render_page"]

_DASH = "&ndash;"  # no figure (yet)

_CLASS_COLOURS = (("2xx", "#2e7d32"), ("3xx", "#1565c0"), ("4xx", "#ef6c00"),
                  ("5xx", "#c62828"))


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def num(value: float | None) -> str:
    return _DASH if value is None else f"{int(value):,}"


def dec(value: float | None, digits: int = 2) -> str:
    return _DASH if value is None else f"{value:.{digits}f}"


def when(epoch: float | None) -> str:
    if epoch is None:
        return _DASH
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def age(seconds: float | None) -> str:
    if seconds is None:
        return _DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def size(count: float | None) -> str:
    if count is None:
        return _DASH
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def mix_bar(classes: dict[str, int]) -> str:
    total = sum(classes.values())
    if not total:
        return ""
    x, parts = 0.0, []
    for kind, colour in _CLASS_COLOURS:
        width = 80 * classes.get(kind, 0) / total
        if width > 0:
            parts.append(f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="10" '
                         f'fill="{colour}"><title>{kind}: {classes[kind]}</title></rect>')
            x += width
    return (f'<svg class="mix" width="80" height="10" viewBox="0 0 80 10" role="img" '
            f'aria-label="status mix">{"".join(parts)}</svg>')


def chart(key: str, title: str, t: Sequence[float], values: Sequence[float | None],
          unit: str) -> str:
    points = [(x, y) for x, y in zip(t, values, strict=False) if y is not None]
    head = f'<figure class="chart" data-chart="{_e(key)}"><figcaption>{_e(title)}'
    if len(points) < 2:
        return head + ' <span class="muted">collecting…</span></figcaption></figure>'
    t0, t1 = points[0][0], points[-1][0]
    top = max(y for _, y in points) or 1.0
    span = (t1 - t0) or 1.0
    line = " ".join(f"{300 * (x - t0) / span:.1f},{80 - 76 * y / top:.1f}" for x, y in points)
    last = points[-1][1]
    return (head + f' <span class="last">{dec(last)} {_e(unit)}</span></figcaption>'
            f'<svg width="300" height="96" viewBox="0 0 300 96" role="img" '
            f'aria-label="{_e(title)}"><line x1="0" y1="80" x2="300" y2="80" '
            f'stroke="#bbb"/><polyline fill="none" stroke="#1565c0" stroke-width="1.5" '
            f'points="{line}"/><text x="0" y="94" font-size="10">'
            f'-{age(t1 - t0)}</text><text x="300" y="94" font-size="10" text-anchor="end">'
            f'now</text><text x="2" y="10" font-size="10">max {dec(top)}</text></svg>'
            "</figure>")


def _kv(rows: Sequence[tuple[str, str, str]]) -> str:
    return "<table class=\"kv\">" + "".join(
        f'<tr><th>{_e(label)}</th><td data-k="{_e(key)}">{value}</td></tr>'
        for key, label, value in rows) + "</table>"


def _counts(counts: dict[str, int], empty: str) -> str:
    if not counts:
        return f'<span class="muted">{_e(empty)}</span>'
    return " ".join(f'<span class="pill" data-reason="{_e(k)}">{_e(k)} '
                    f"<b>{num(v)}</b></span>" for k, v in counts.items())


def _upstreams(route: dict[str, Any]) -> str:
    cells = []
    for up in route.get("upstreams", ()):
        ok = up["reachable"]
        mark = "?" if ok is None else "up" if ok else "down"
        reason = f' title="{_e(up["reason"])}"' if up["reason"] else ""
        cells.append(f'<span class="health {mark}"{reason}>{_e(up["upstream"])} {mark}</span>')
    return "<br>".join(cells) or '<span class="muted">&ndash;</span>'


def _route_row(route: dict[str, Any]) -> str:
    lat = route["latency_ms"]
    statuses = " ".join(f"{_e(code)}&times;{num(n)}" for code, n in route["statuses"].items())
    spool = route.get("spool")
    spooled = _DASH if spool is None else (
        f'{num(spool["depth"])} waiting, oldest {age(spool["oldest_age_seconds"])}, '
        f'{num(spool["dead_letters"])} dead')
    return (f'<tr data-route="{_e(route["route"])}"><td class="route">{_e(route["route"])}</td>'
            f'<td>{_e(route["delivery"])}</td>'
            f'<td data-k="requests_per_s">{dec(route["requests_per_s"])}</td>'
            f'<td data-k="requests">{num(route["requests"])}</td>'
            f'<td data-k="statuses">{mix_bar(route["classes"])} {statuses}</td>'
            f'<td data-k="p50">{dec(lat["p50"])}</td><td data-k="p99">{dec(lat["p99"])}</td>'
            f"<td>{_upstreams(route)}</td><td data-k=\"spool\">{spooled}</td></tr>")


def _dead_letters(doc: dict[str, Any], csrf: str | None) -> str:
    dead = doc["dead_letters"]
    if not dead:
        return '<p class="muted" id="no-dead-letters">No dead letters.</p>'
    head = ("<tr><th>id</th><th>route</th><th>method</th><th>size</th><th>arrived</th>"
            "<th>attempts</th><th>last status</th><th>last error</th>"
            + ("<th>actions</th>" if csrf else "") + "</tr>")
    rows = []
    for d in dead:
        actions = ""
        if csrf:
            actions = "<td>" + "".join(
                f'<form method="post" action="/spool/{verb}" class="inline">'
                f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
                f'<input type="hidden" name="id" value="{int(d["id"])}">'
                f'<button type="submit" class="{verb}" data-id="{int(d["id"])}">{verb}</button>'
                "</form>" for verb in ("retry", "purge")) + "</td>"
        rows.append(
            f'<tr data-dead="{int(d["id"])}"><td>{int(d["id"])}</td><td>{_e(d["route"])}</td>'
            f'<td>{_e(d["method"])}</td><td>{size(d["bytes"])}</td>'
            f'<td>{when(d["accepted_at"])}</td><td>{num(d["attempts"])}</td>'
            f'<td>{(_e(d["last_status"]) if d["last_status"] else _DASH)}</td>'
            f'<td class="error">{_e(d["last_error"] or "")}</td>{actions}</tr>')
    note = "" if csrf else ('<p class="muted">Actions are offered when the page is opened '
                            "by IP address, localhost or server.admin.host.</p>")
    return f'<table class="grid" id="dead-letters">{head}{"".join(rows)}</table>{note}'


def render_main(doc: dict[str, Any], csrf: str | None) -> str:
    """Everything inside ``<main>``; ``csrf`` None shows no actions."""
    parts = []
    ready = doc["readiness"] or {}
    problems = [*ready.get("reasons", []), *ready.get("degraded", [])]
    if problems:
        parts.append('<section id="problems"><ul>' + "".join(
            f"<li>{_e(p)}</li>" for p in problems) + "</ul></section>")
    parts.append(
        '<section id="routes"><h2>Routes</h2><table class="grid"><tr><th>route</th>'
        "<th>delivery</th><th>req/s</th><th>requests</th><th>status mix</th><th>p50 ms</th>"
        "<th>p99 ms</th><th>upstream</th><th>spool</th></tr>"
        + "".join(_route_row(r) for r in doc["routes"]) + "</table>"
        '<p class="muted">Rates and percentiles over the last minute.</p></section>')
    token = doc["token_endpoint"]
    parts.append(
        '<div class="cols"><section id="token"><h2>Token endpoint</h2>' + _kv([
            ("tokens_issued", "tokens issued", num(token["tokens_issued"])),
            ("tokens_issued_per_s", "tokens/s", dec(token["tokens_issued_per_s"])),
            ("rate_limited", "429 refusals", num(token["rate_limited"])),
            ("token_p99", "p99 ms", dec(token["latency_ms"]["p99"]))])
        + "<h3>Authentication failures</h3><p id=\"auth-failures\">"
        + _counts(doc["auth_failures"], "none") + "</p></section>")
    workers, reload, state, tls = doc["workers"], doc["reload"], doc["state"], doc["tls"]
    expires = tls["certificate_expires_at"]
    last = ("never since start" if reload["last_at"] is None else
            f'{when(reload["last_at"])} ({_e(reload["last_result"])})')
    parts.append('<section id="gateway"><h2>Gateway</h2>' + _kv([
        ("workers", "workers", f'{num(workers["running"])} of {num(workers["configured"])}'),
        ("restarts", "restarts", num(workers["restarts"])),
        ("reload", "last reload", last),
        ("state", "shared state",
         f'<span class="health {"up" if state["status"] == "ok" else "down"}">'
         f'{_e(state["backend"])} {_e(state["status"])}</span>'),
        ("certificate", "certificate expires",
         _DASH if expires is None
         else f'{when(expires)} (in {age(expires - doc["generated_at"])})'),
        ("in_flight", "in flight", num(doc["in_flight"])),
        ("upstream_errors", "upstream errors", _counts(doc["upstream_errors"], "none"))])
        + "</section></div>")
    spool = doc["spool"]
    if spool is not None:
        parts.append('<section id="spool"><h2>Spool</h2>' + _kv([
            ("depth", "waiting", num(spool["depth"])),
            ("oldest_age_seconds", "oldest", age(spool["oldest_age_seconds"])),
            ("bytes", "stored", f'{size(spool["bytes"])} of {size(spool["max_bytes"])}'),
            ("dead_letters", "dead letters", num(spool["dead_letters"])),
            *([("store", "store", _e(spool["store"]))] if spool.get("store") else [])])
            + "<h3>Dead letters</h3>" + _dead_letters(doc, csrf) + "</section>")
    h = doc["history"]
    parts.append('<section id="charts"><h2>Last minutes</h2><div class="charts">'
                 + chart("requests", "requests/s", h["t"], h["requests_per_s"], "/s")
                 + chart("errors", "5xx/s", h["t"], h["errors_5xx_per_s"], "/s")
                 + chart("p99", "p99 latency", h["t"], h["p99_ms"], "ms")
                 + chart("auth", "auth failures/s", h["t"], h["auth_failures_per_s"], "/s")
                 + (chart("spool", "spool waiting", h["t"], h["spool_depth"], "")
                    if spool is not None else "")
                 + "</div></section>")
    return "".join(parts)


def render_page(doc: dict[str, Any], *, csrf: str | None, nonce: str,
                notice: str | None) -> str:
    ready = (doc["readiness"] or {}).get("status") or "unknown"
    token = f'<meta name="csrf-token" content="{_e(csrf)}">' if csrf else ""
    message = f'<p id="notice">{_e(notice)}</p>' if notice else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gateway status: {_e(ready)}</title>{token}"
        f'<style nonce="{_e(nonce)}">{STYLE}</style></head><body>'
        f'<header><h1>aam-oauth-gateway</h1><span id="readiness" class="badge {_e(ready)}">'
        f'{_e(ready.replace("_", " "))}</span><span id="generated">as of '
        f'{when(doc["generated_at"])}</span><span id="refresh">reload the page to refresh'
        "</span></header>" + message +
        f'<main id="status">{render_main(doc, csrf)}</main>'
        f'<script nonce="{_e(nonce)}">{SCRIPT}</script></body></html>')
