"""The status page on the admin listener, in a real headless browser
(docs/operations.md#the-status-page): the real gateway and the real sample backend as their
own processes on loopback.

* the page renders (every section, its charts) and its JavaScript refresh shows a route's
  counts rising after pushes, without a reload;
* a dead letter's **retry** button requeues it and the backend receives the push;
* a form on another origin that posts to the page's action, even with the right token, is
  refused and changes nothing.

Screenshots of each are saved under the pytest temp dir."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.tools.seed import SEED_PAYLOAD

from browser_harness import wait_until
from e2e_harness import fetch_token
from proc_harness import CapturedProcess, gateway_command
from spool_harness import direct_and_spool_config, free_port, push, recorded

pytestmark = pytest.mark.slow

Shots = Callable[[Any, str], Path]


async def _start(tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path],
                 secret_hash: str, processes: list[CapturedProcess]
                 ) -> tuple[dict[str, int], int, Path]:
    backend_port = free_port()
    record = tmp_path / "received.jsonl"
    backend = gateway_command("backend", "--port", str(backend_port), "--record", str(record))
    processes.append(backend)
    await backend.line("backend listening")
    gateway = gateway_command("serve", "-c", str(direct_and_spool_config(
        tmp_path, cert_dir, signing_keys, secret_hash, backend_port)))
    processes.append(gateway)
    return await gateway.serving(), backend_port, record


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _status(admin: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status.json", timeout=10) as r:
        return dict(json.load(r))


def _cell(driver: Any, route: str, key: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(
        By.CSS_SELECTOR, f'tr[data-route="{route}"] td[data-k="{key}"]').text)


async def test_the_page_renders_and_its_refresh_shows_a_routes_counts_rising(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess], browser: Any,
        screenshots: Shots) -> None:
    from selenium.webdriver.common.by import By

    ports, _, _ = await _start(tmp_path, cert_dir, signing_keys, secret_hash, processes)
    browser.get(f"http://127.0.0.1:{ports['admin']}/")
    assert browser.find_element(By.ID, "readiness").text == "ready"
    for section in ("routes", "token", "gateway", "spool", "charts"):
        assert browser.find_element(By.ID, section).is_displayed(), section
    assert _cell(browser, "/segments/aam", "requests") == "0"
    assert "up" in browser.find_element(By.CSS_SELECTOR,
                                        'tr[data-route="/segments/aam"] .health').text
    # The script took over: it says it refreshes (the HTML as sent says "reload the page").
    wait_until(lambda: "refreshing every" in browser.find_element(By.ID, "refresh").text)
    screenshots(browser, "status-page-before")

    token = await fetch_token(session, ports["https"])
    for i in range(3):
        assert await push(session, ports["https"], token, f"page-{i}") == 200
    assert await push(session, ports["https"], "wrong", "page-refused") == 401
    # No reload: the page's own refresh from /status.json brings the new counts.
    wait_until(lambda: _cell(browser, "/segments/aam", "requests") == "4", 30)
    assert "200\u00d73" in _cell(browser, "/segments/aam", "statuses")
    assert "401\u00d71" in _cell(browser, "/segments/aam", "statuses")
    failures = browser.find_element(By.ID, "auth-failures").text
    assert "invalid_token 1" in failures
    assert browser.find_element(By.CSS_SELECTOR, 'td[data-k="tokens_issued"]').text == "1"
    # The charts fill once the sampler has two points; they are inline SVG.
    wait_until(lambda: browser.find_elements(
        By.CSS_SELECTOR, 'figure[data-chart="requests"] svg polyline'), 30)
    screenshots(browser, "status-page-after-pushes")
    # The same page without JavaScript's help: the HTML as sent has the figures.
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/", timeout=10) as r:
        html = r.read().decode()
    assert '<td data-k="requests">4</td>' in html and "reload the page to refresh" in html


async def test_a_dead_letters_retry_button_requeues_it_and_the_backend_receives_it(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess], browser: Any,
        screenshots: Shots) -> None:
    from selenium.webdriver.common.by import By

    ports, backend_port, record = await _start(tmp_path, cert_dir, signing_keys, secret_hash,
                                               processes)
    backend = f"http://127.0.0.1:{backend_port}"
    async with aiohttp.ClientSession() as plain:
        async with plain.post(backend + "/_control", json={"status": 422}) as response:
            assert response.status == 200
        token = await fetch_token(session, ports["https"])
        async with session.post(f"https://localhost:{ports['https']}/segments/spooled",
                                data=SEED_PAYLOAD, headers={
                                    "Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json",
                                    "X-Request-Id": "dead-then-retried"}) as response:
            assert response.status == 200
        dead = wait_until(lambda: _status(ports["admin"])["dead_letters"], 20)
        assert dead[0]["last_status"] == 422 and "headers" not in dead[0]
        async with plain.post(backend + "/_control", json={"status": 200}) as response:
            assert response.status == 200
    browser.get(f"http://127.0.0.1:{ports['admin']}/")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-dead="{dead[0]["id"]}"]')
    assert "422" in row.text
    screenshots(browser, "status-page-dead-letter")
    row.find_element(By.CSS_SELECTOR, "button.retry").click()
    wait_until(lambda: "Requeued 1 item(s)" in browser.find_element(By.ID, "notice").text)
    wait_until(lambda: recorded(record).count("dead-then-retried") == 2, 20)  # 422, then 200
    wait_until(lambda: not _status(ports["admin"])["dead_letters"], 20)
    browser.refresh()
    wait_until(lambda: browser.find_elements(By.ID, "no-dead-letters"))
    screenshots(browser, "status-page-after-retry")


async def test_a_cross_origin_post_is_refused(
        tmp_path: Path, cert_dir: Path, signing_keys: dict[str, Path], secret_hash: str,
        session: aiohttp.ClientSession, processes: list[CapturedProcess], browser: Any,
        screenshots: Shots) -> None:
    from selenium.webdriver.common.by import By

    ports, backend_port, _ = await _start(tmp_path, cert_dir, signing_keys, secret_hash,
                                          processes)
    admin = f"http://127.0.0.1:{ports['admin']}"
    async with aiohttp.ClientSession() as plain:
        async with plain.post(f"http://127.0.0.1:{backend_port}/_control",
                              json={"status": 400}) as response:
            assert response.status == 200
        token = await fetch_token(session, ports["https"])
        async with session.post(f"https://localhost:{ports['https']}/segments/spooled",
                                data=SEED_PAYLOAD, headers={
                                    "Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"}) as response:
            assert response.status == 200
        dead = wait_until(lambda: _status(ports["admin"])["dead_letters"], 20)
        async with plain.get(admin + "/") as response:  # the attacker even has the token
            page = await response.text()
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    # Another origin (another port, another host name) serves a form that posts to the
    # page's action and submits itself as soon as it loads; a process of its own.
    site = tmp_path / "elsewhere"
    site.mkdir()
    (site / "index.html").write_text(
        f'<form id="f" method="post" action="{admin}/spool/purge">'
        f'<input name="csrf" value="{csrf}"><input name="id" value="{dead[0]["id"]}">'
        "</form><script>document.getElementById('f').submit()</script>")
    other = free_port()
    elsewhere = CapturedProcess([sys.executable, "-m", "http.server", str(other), "--bind",
                                 "127.0.0.1", "--directory", str(site)])
    processes.append(elsewhere)
    await elsewhere.wait_for(lambda: _listening(other))
    browser.get(f"http://localhost:{other}/")
    wait_until(lambda: "forbidden" in browser.find_element(By.TAG_NAME, "body").text)
    assert "Cross-origin request refused" in browser.find_element(By.TAG_NAME, "body").text
    screenshots(browser, "status-page-cross-origin-refused")
    still = _status(ports["admin"])["dead_letters"]
    assert [d["id"] for d in still] == [d["id"] for d in dead]  # nothing was purged
