"""The admin listener's status page (docs/operations.md#the-status-page): ``GET /``,
``GET /status.json``, and the dead-letter actions ``POST /spool/retry`` and
``POST /spool/purge``.

Everything shown is read from what already exists: the summed metric snapshots (workers
included, as ``/metrics``), the spool's file, and a health check that is ``/readyz``'s own
verdict, run at most every ``HEALTH_SECONDS`` however many pages and scrapes ask (it also
feeds ``gateway_ready``, ``gateway_upstream_reachable`` and the certificate's expiry on
``/metrics``). A sampler keeps the last minutes for the charts. The request path is not
touched.

The actions change the spool, so a page another site shows must not be able to trigger
them (CSRF) and a DNS-rebinding page must not be able to read the token that allows them:

* POST only, form-encoded, with the per-process anti-CSRF token from the page;
* ``Host`` must name this listener by an IP address, ``localhost``, the configured
  ``server.admin.host`` or a name of ``server.admin.hosts``: a rebinding attack always comes
  with a DNS name of its own. Pages asked for under another name are shown without the token
  and without the buttons (the admin listener refuses most such names first:
  ``admin_guard.py``);
* ``Origin`` (or, without it, ``Referer``) must be this very host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography import x509
from yarl import URL

from gateway.config import Settings
from gateway.errors import ForbiddenError, InvalidRequestError
from gateway.observe.metrics import Snapshot, merge
from gateway.observe.status_history import SAMPLE_SECONDS, History, sample_of
from gateway.observe.status_html import render_page
from gateway.observe.status_model import DeadLetter, Health, status_document
from gateway.serve.readiness import AdminProbe, probe_upstreams, readiness
from gateway.serve.status_spool import Action, change, dead_letters
from gateway.spool.factory import backend_for
from gateway.spool.status import spool_snapshot

__all__ = ["HEALTH_SECONDS", "StatusPage", "health_snapshot"]

log = logging.getLogger("gateway.status")

HEALTH_SECONDS = 5.0
ANSWER_SECONDS = 0.9  # /readyz, /metrics and the page answer within 1 s whatever
DEAD_LETTERS_SHOWN = 50
_HTML = "text/html; charset=utf-8"


def _origin(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.scheme}://{parsed.host_port_subcomponent}"


def certificate_expiry(path: Path) -> float | None:
    """When the first certificate of a PEM chain file (the leaf) expires, Unix time."""
    try:
        leaf = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return leaf.not_valid_after_utc.timestamp()


def health_snapshot(health: Health) -> Snapshot:
    """The health check's gauges for ``/metrics``."""
    snapshot: Snapshot = {
        "gateway_ready": [[[], 1 if health.ready else 0]],
        "gateway_upstream_reachable": [[[origin], 0 if reason else 1]
                                       for origin, reason in sorted(health.upstreams.items())]}
    if health.certificate_expiry is not None:
        snapshot["gateway_tls_certificate_expiry_timestamp_seconds"] = [
            [[], health.certificate_expiry]]
    return snapshot


def _trusted_host(host: str, settings: Settings) -> bool:
    name = urlsplit(f"//{host}").hostname
    if not name:
        return False
    admin = settings.server.admin
    if name in ("localhost", admin.host.lower().strip("[]"), *admin.hosts):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class StatusPage:
    """The page's state: the health check, the sampler's history, the anti-CSRF token."""

    def __init__(self, probe: AdminProbe) -> None:
        self.probe = probe
        self.history = History()
        self.token = secrets.token_urlsafe(32)
        self.health: Health | None = None
        self._check: asyncio.Task[Health] | None = None
        self._certificate: tuple[object, float | None] = (None, None)

    # -- the health check ----------------------------------------------------------------
    def _expiry(self, settings: Settings) -> float | None:
        """Read once per loaded configuration: the file on disk may be newer than what
        serves until the next reload."""
        tls, expiry = self._certificate
        if tls is not settings.server.tls:
            expiry = certificate_expiry(settings.server.tls.cert_file)
            self._certificate = (settings.server.tls, expiry)
        return expiry

    def record(self, ready: bool, body: dict[str, object],
               reachable: dict[str, str | None]) -> Health:
        settings = self.probe.current()[0]
        upstreams: dict[str, str | None] = {}
        for url, reason in reachable.items():
            upstreams[_origin(url)] = upstreams.get(_origin(url)) or reason
        self.health = Health(time.time(), ready, body, upstreams, self._expiry(settings))
        return self.health

    async def _run_check(self) -> Health:
        reachable = await probe_upstreams(self.probe.current()[0])
        ready, body = await readiness(self.probe, reachable)
        return self.record(ready, body, reachable)

    def _start_check(self) -> asyncio.Future[Health]:
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(self._run_check())
        return self._check

    async def checked(self) -> Health:
        """The last health check if younger than ``HEALTH_SECONDS``, else a new one (one
        at a time, whoever asks), or the last one when the new one takes longer than
        ``ANSWER_SECONDS`` (it goes on in the background)."""
        if self.health is not None and time.time() - self.health.at < HEALTH_SECONDS:
            return self.health
        return await self.fresh()

    async def fresh(self) -> Health:
        """A new check within ``ANSWER_SECONDS``; past that, the last one (``/readyz``
        never hangs on an upstream or a store). Before any has ended: not ready, saying
        so."""
        check = self._start_check()
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                return await asyncio.shield(check)
        except TimeoutError:
            if self.health is not None:
                return self.health
            body: dict[str, object] = {"status": "not_ready",
                                       "reasons": ["the first readiness check is running"]}
            return Health(time.time(), False, body, {}, None)

    # -- the sampler ---------------------------------------------------------------------
    async def _merged(self) -> tuple[Settings, dict[str, Any]]:
        settings = self.probe.current()[0]
        spool = await spool_snapshot(settings)
        return settings, merge([*self.probe.snapshots(), *spool])

    async def sample(self) -> None:
        _, merged = await self._merged()
        depth = merged["gateway_spool_depth"]
        self.history.add(sample_of(merged, time.time(),
                                   int(sum(depth.values())) if depth else None))

    async def lifecycle(self, _: web.Application) -> AsyncIterator[None]:
        async def run() -> None:
            while True:
                try:
                    await self.sample()
                except Exception:  # never let a bad read end the sampling
                    log.exception("status sample failed", extra={"reason_id": "status_sample"})
                await asyncio.sleep(SAMPLE_SECONDS)

        task = asyncio.get_running_loop().create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # -- the document --------------------------------------------------------------------
    async def document(self) -> dict[str, Any]:
        settings, merged = await self._merged()
        depth = merged["gateway_spool_depth"]
        now = sample_of(merged, time.time(), int(sum(depth.values())) if depth else None)
        health = await self.checked()
        dead: list[DeadLetter] | None = None
        if merged["gateway_spool_bytes"]:  # a spool is in use and its file was read
            with contextlib.suppress(Exception):
                dead = [DeadLetter(e.id, e.route, e.method, e.size, e.accepted_at, e.attempts,
                                   e.last_status, e.last_error)
                        for e in await dead_letters(settings, DEAD_LETTERS_SHOWN)]
        origins = {r.path: list(dict.fromkeys(_origin(u) for u in r.upstreams))
                   for r in settings.routes}
        return status_document(settings, merged, now, self.history, health, dead, origins)

    # -- handlers ------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        settings = self.probe.current()[0]
        document = await self.document()
        trusted = _trusted_host(request.host, settings)
        nonce = secrets.token_urlsafe(16)
        notice = _notice(request.query)
        html = render_page(document, csrf=self.token if trusted else None, nonce=nonce,
                           notice=notice)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            headers=_page_headers(nonce))

    async def status_json(self, _: web.Request) -> web.Response:
        return web.json_response(await self.document(),
                                 headers={"Cache-Control": "no-store",
                                          "X-Content-Type-Options": "nosniff"})

    def _check_request(self, request: web.Request, form: dict[str, str]) -> None:
        settings = self.probe.current()[0]
        if not _trusted_host(request.host, settings):
            raise ForbiddenError("Host must be an IP address, localhost or server.admin.host.")
        origin = request.headers.get("Origin")
        if origin is None and "Referer" in request.headers:
            referer = urlsplit(request.headers["Referer"])
            origin = f"{referer.scheme}://{referer.netloc}"
        if origin not in (f"http://{request.host}", f"https://{request.host}"):
            raise ForbiddenError("Cross-origin request refused.")
        if not hmac.compare_digest(form.get("csrf", "").encode(), self.token.encode()):
            raise ForbiddenError("Missing or wrong anti-CSRF token; reload the page.")

    async def act(self, request: web.Request) -> web.Response:
        action: Action = "retry" if request.path.endswith("/retry") else "purge"
        if request.content_type != "application/x-www-form-urlencoded":
            raise InvalidRequestError("Expected a form (application/x-www-form-urlencoded).")
        form = {k: str(v) for k, v in (await request.post()).items()}
        self._check_request(request, form)
        ids: list[int] | None
        if form.get("all") == "1":
            ids = None
        else:
            try:
                ids = [int(form["id"])]
            except (KeyError, ValueError):
                raise InvalidRequestError("Give one item id, or all=1.") from None
        settings = self.probe.current()[0]
        if not backend_for(settings.spool).exists():
            count = 0
        else:
            count = await change(settings, action, ids)
        log.info("dead letters %s from the status page", "requeued" if action == "retry"
                 else "purged", extra={"reason_id": f"status_{action}", "count": count,
                                       "ids": ids if ids is not None else "all"})
        asked = "all" if ids is None else str(ids[0])
        # Post/redirect/get: a reload of the page never repeats the action.
        return web.Response(status=303, headers={
            "Location": f"/?action={action}&changed={count}&asked={asked}#spool",
            "Cache-Control": "no-store"})


def _notice(query: Any) -> str | None:
    action, changed, asked = query.get("action"), query.get("changed"), query.get("asked")
    if action not in ("retry", "purge") or not str(changed).isdigit():
        return None
    what = "every dead letter" if asked == "all" else (
        f"item {asked}" if str(asked).isdigit() else "the item")
    verb = "requeued" if action == "retry" else "purged"
    if changed == "0":
        return f"Nothing {verb} for {what}: unknown, not a dead letter, or in delivery."
    return f"{verb.capitalize()} {changed} item(s) ({what})."


def _page_headers(nonce: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }


def add_status_routes(app: web.Application, probe: AdminProbe) -> StatusPage:
    page = StatusPage(probe)
    app.router.add_get("/", page.page)
    app.router.add_get("/status.json", page.status_json)
    app.router.add_post("/spool/retry", page.act)
    app.router.add_post("/spool/purge", page.act)
    app.cleanup_ctx.append(page.lifecycle)
    return page
