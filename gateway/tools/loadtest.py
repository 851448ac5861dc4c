"""``gateway loadtest``: the IRIS simulator under load (docs/adobe.md, docs/operations.md).

It behaves as Adobe's IRIS does: one client-credentials token (RFC 6749 §4.4) fetched
with the exact headers of Adobe's sample, reused until a ``401`` and then replaced once
however many workers saw the ``401``, and pushes of generated ``aam-segments`` payloads
with ``Authorization: Bearer`` (RFC 6750 §2.1) at a fixed concurrency, optionally paced.
``--profile aep`` fetches the token as Adobe Experience Platform does (the credentials in
the form body) and pushes AEP profile batches instead (``loadtest_aep.py``, docs/aep.md).
The report is in ``loadtest_report.py``. Only loopback targets are accepted unless
``allow_remote`` is set: CI must never load-test somebody else's host. Every run is
bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import ssl
import time
from collections import Counter
from urllib.parse import urlsplit

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from gateway.tools.loadtest_aep import body_maker, push_headers, token_request
from gateway.tools.loadtest_bottleneck import GatewayTimes, scrape
from gateway.tools.loadtest_html import LoadSamples
from gateway.tools.loadtest_options import (
    POOL_MAX_BYTES,
    POOL_SIZE,
    LoadOptions,
    LoadTestError,
)
from gateway.tools.loadtest_report import LatencySummary, LoadReport

__all__ = ["LoadReport", "TokenFetchError", "error_kind", "run_load"]

class TokenFetchError(LoadTestError):
    """The token endpoint did not hand out a bearer token."""


def error_kind(exc: BaseException) -> str:
    """A stable name for a failed push, most specific class first."""
    if isinstance(exc, TokenFetchError):
        return "token_error"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls_error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect_error"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "payload_error"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol_error"
    if isinstance(exc, OSError):
        return "os_error"
    return "client_error"


_LARGE = 1 << 20
# What a failed push may raise; anything else is a bug in the simulator and must surface.
_PUSH_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, TokenFetchError)
TLS_HINT = ("the server's certificate is not trusted: pass --ca with the CA that signed it "
            "(certs/ca.crt for the chain `gateway certs` made)")


async def _gateway_times(options: LoadOptions) -> tuple[GatewayTimes | None, str | None]:
    if options.admin_url is None:
        return None, None
    try:
        return await scrape(options.admin_url, urlsplit(options.url).path), None
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
        return None, f"{options.admin_url}: {exc.__class__.__name__}"


class _Tokens:
    """IRIS's one bearer token: reused until a 401, then replaced by a single fetch."""

    def __init__(self, session: aiohttp.ClientSession, options: LoadOptions) -> None:
        self._session = session
        self._url = options.effective_token_url
        # IRIS's Basic request or AEP's body form (loadtest_aep.py).
        self._headers, self._body = token_request(options)
        self._lock = asyncio.Lock()
        self.token: str | None = None
        self.fetches = 0
        self.failures = 0

    async def current(self) -> str:
        return self.token if self.token is not None else await self.replace(None)

    async def replace(self, stale: str | None) -> str:
        """Single flight: whoever queued behind the fetch finds the fresh token and returns."""
        async with self._lock:
            if self.token is not None and self.token != stale:
                return self.token
            self.token = await self._fetch()
            return self.token

    async def _fetch(self) -> str:
        self.fetches += 1
        async with self._session.post(self._url, data=self._body,
                                      headers=self._headers) as resp:
            body = await resp.read()
        # SECURITY: the response may hold a token; errors name the status, never the body.
        if resp.status != 200:
            raise TokenFetchError(f"token endpoint {self._url} answered {resp.status}")
        try:
            doc = json.loads(body)
            token, kind = doc["access_token"], doc.get("token_type", "")
        except (ValueError, TypeError, KeyError) as exc:
            raise TokenFetchError(f"token endpoint {self._url}: no access_token") from exc
        if not isinstance(token, str) or not token or str(kind).lower() != "bearer":
            raise TokenFetchError(f"token endpoint {self._url}: not a Bearer token")
        return token


def _payload_pool(options: LoadOptions) -> list[bytes]:
    """Distinct bodies made before the clock starts, so generation is never measured."""
    rng = random.Random(options.seed)  # noqa: S311 - test data, not secrets
    make = body_maker(options)
    pool: list[bytes] = []
    size = 0
    while len(pool) < POOL_SIZE and (not pool or size < POOL_MAX_BYTES):
        pool.append(make(rng))
        size += len(pool[-1])
    return pool


class _Run:
    """The shared state of the workers of one run."""

    def __init__(self, options: LoadOptions, session: aiohttp.ClientSession, tokens: _Tokens,
                 pool: list[bytes]) -> None:
        self.options = options
        self.session = session
        self.tokens = tokens
        self.pool = pool
        self.headers = push_headers(options)
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadline = self.started + options.time_limit
        self.claimed = 0
        self.done = 0
        self.latencies: list[float] = []
        self.samples = LoadSamples()  # for --report's charts over time
        self.zero = time.perf_counter()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()

    def _claim(self) -> int | None:
        # One event loop, no await between test and increment: the count is exact.
        limit = self.options.requests
        if (limit is not None and self.claimed >= limit) or self.loop.time() >= self.deadline:
            return None
        self.claimed += 1
        return self.claimed - 1

    async def worker(self) -> None:
        rate = self.options.rate
        while (slot := self._claim()) is not None:
            if rate is not None:
                due = self.started + slot / rate
                if due >= self.deadline:
                    return
                await asyncio.sleep(max(0.0, due - self.loop.time()))
            await self._push(self.pool[slot % len(self.pool)])
            self.done += 1

    async def _push(self, body: bytes) -> None:
        try:
            token = await self.tokens.current()
            headers = {**self.headers, "Authorization": f"Bearer {token}"}
            begun = time.perf_counter()
            # An AEP batch may pass 1 MiB, where aiohttp wants a file-like body (it warns).
            data = body if len(body) < _LARGE else io.BytesIO(body)
            async with self.session.request(
                self.options.method, self.options.url, data=data, headers=headers
            ) as resp:
                await resp.read()
            ended = time.perf_counter()
            self.latencies.append(ended - begun)
            self.samples.add(ended - self.zero, ended - begun, resp.status)
            self.statuses[resp.status] += 1
        except _PUSH_ERRORS as exc:
            self.errors[error_kind(exc)] += 1
            return
        if resp.status == 401:
            # IRIS fetches a new token when the old one stops working. A failed fetch keeps
            # the stale token, so the next push meets a 401 again and tries again.
            try:
                await self.tokens.replace(token)
            except _PUSH_ERRORS:
                self.tokens.failures += 1

    async def show_progress(self, console: Console) -> None:
        limit = self.options.requests
        caller = "AEP" if self.options.profile == "aep" else "IRIS"
        columns = (TextColumn(f"[bold]{caller} push"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[done]} requests"), TimeElapsedColumn())
        # auto_refresh=False: no rendering thread competing with the loop for the GIL.
        with Progress(*columns, console=console, transient=True, auto_refresh=False) as bar:
            task = bar.add_task("load", total=limit or self.options.time_limit, done=0)
            while True:
                elapsed = self.loop.time() - self.started
                bar.update(task, completed=self.done if limit else elapsed, done=self.done)
                bar.refresh()
                await asyncio.sleep(0.25)


async def run_load(options: LoadOptions, *, console: Console | None = None) -> LoadReport:
    """Run one bounded load and report; raises UsageError or LoadTestError (no token)."""
    verify = options.client_ssl()
    pool = await asyncio.to_thread(_payload_pool, options)
    connector = aiohttp.TCPConnector(limit=options.concurrency, ssl=verify)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=options.timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        # Adobe's sample requests list no Accept header; send only what IRIS sends.
        skip_auto_headers=("Accept",),
    ) as session:
        tokens = _Tokens(session, options)
        try:
            await tokens.current()
        except _PUSH_ERRORS as exc:
            kind = error_kind(exc)
            hint = f"; {TLS_HINT}" if kind == "tls_error" and not options.ca_file else ""
            raise LoadTestError(
                f"no token from {options.effective_token_url}: {kind} ({exc}){hint}"
            ) from exc
        before, problem = await _gateway_times(options)
        cpu_before = time.process_time()
        state = _Run(options, session, tokens, pool)
        bar = (asyncio.create_task(state.show_progress(console or Console()))
               if options.progress else None)
        try:
            await asyncio.gather(*(state.worker() for _ in range(options.concurrency)))
        finally:
            if bar is not None:
                bar.cancel()
                await asyncio.gather(bar, return_exceptions=True)
        elapsed = state.loop.time() - state.started
        cpu = time.process_time() - cpu_before
    after, problem = await _gateway_times(options) if problem is None else (None, problem)
    notes: list[str] = []
    if state.errors.get("tls_error") and not options.ca_file:
        notes.append(f"TLS errors: {TLS_HINT}.")
    achieved = state.done / elapsed if elapsed > 0 else 0.0
    if options.rate is not None and achieved < 0.95 * options.rate:
        # Pacing only holds requests back; with too few workers the offered rate is lower.
        notes.append(
            f"Asked for {options.rate:g} req/s, achieved {achieved:.1f}: raise --concurrency "
            "or the target cannot keep up."
        )
    return LoadReport(
        url=options.url,
        method=options.method,
        profile=options.profile,
        concurrency=options.concurrency,
        users_per_request=options.users_per_request,
        rate=options.rate,
        requests=state.done,
        duration_s=elapsed,
        latency_ms=LatencySummary.from_seconds(state.latencies),
        status_counts=dict(state.statuses),
        errors=dict(state.errors),
        token_fetches=tokens.fetches,
        token_failures=tokens.failures,
        cpu_s=cpu,
        cpu_count=os.cpu_count() or 1,
        notes=tuple(notes),
        samples=state.samples,
        gateway=after - before if after is not None and before is not None else None,
        scrape_problem=problem,
    )
