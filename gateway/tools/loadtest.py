"""``gateway loadtest``: the IRIS simulator under load (SPEC §8, protocol.md).

It behaves as Adobe's IRIS does: one client-credentials token (RFC 6749 §4.4) fetched with
the seed's exact headers, reused until a ``401`` and then replaced once however many workers
saw the ``401``, and pushes of generated ``aam-segments`` payloads with ``Authorization:
Bearer`` (RFC 6750 §2.1) at a fixed concurrency, optionally paced. The report is in
``loadtest_report.py``. Only loopback targets are accepted unless ``allow_remote`` is set:
CI must never load-test somebody else's host. Every run is bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import random
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote_plus, urlsplit, urlunsplit

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from gateway.tools.loadtest_report import LatencySummary, LoadReport
from gateway.tools.payloads import make_payload_bytes

__all__ = [
    "LoadOptions",
    "LoadReport",
    "LoadTestError",
    "UsageError",
    "basic_credential",
    "is_loopback_host",
    "run_load",
]

IRIS_USER_AGENT = "Adobe Audience Manager Iris"
# Byte for byte the seed's token request (vectors/token-request.http), no space around ';'.
TOKEN_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"
TOKEN_BODY = b"grant_type=client_credentials"
# IRIS gives the partner 3,000 ms to answer 200; a slower answer is a failed push for IRIS.
IRIS_TIMEOUT_S = 3.0
POOL_SIZE = 64
POOL_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_DURATION_S = 10.0
# The hard bounds that hold even when the caller asks for more.
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 10_000_000
MAX_CONCURRENCY = 4096
MAX_USERS = 100_000


class LoadTestError(Exception):
    """The run could not start or go on, e.g. no token could be obtained (exit 1)."""


class UsageError(LoadTestError):
    """Options that cannot work, or a target we refuse to load (exit 2)."""


def basic_credential(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: ``base64(urlencode(client_id) ":" urlencode(secret))``."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return base64.b64encode(pair.encode("ascii")).decode("ascii")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (IPv4-mapped forms included)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        # Any other name could resolve anywhere; only the literal addresses are provable.
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _check_url(name: str, url: str, allow_remote: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"{name}: expected an https:// (or http://) URL with a host, got {url!r}")
    if not allow_remote and not is_loopback_host(parts.hostname):
        raise UsageError(
            f"{name}: refusing to load-test {parts.hostname!r}, which is not loopback "
            "(127.0.0.0/8, ::1, localhost); pass --allow-remote only for a host you own"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """One load run. ``credential`` is the Basic value sent as is (``basic_credential`` makes
    the RFC form). ``duration`` None means 10 s, or, with ``requests``, a 1-hour safety cap."""

    url: str
    credential: str = field(repr=False)
    token_url: str | None = None
    method: str = "POST"
    users_per_request: int = 10
    concurrency: int = 16
    duration: float | None = None
    requests: int | None = None
    rate: float | None = None
    timeout: float = IRIS_TIMEOUT_S
    ca_file: str | None = None
    insecure: bool = False
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    allow_remote: bool = False
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        _check_url("URL", self.url, self.allow_remote)
        _check_url("--token-url", self.effective_token_url, self.allow_remote)
        # A header value: printable ASCII only, so no CR/LF can split the request.
        if not (self.credential.isascii() and self.credential.isprintable()) or not self.credential:
            raise UsageError("the credential must be non-empty printable ASCII")
        if self.method not in ("POST", "GET"):
            raise UsageError(f"--method: POST or GET, got {self.method!r}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency: 1..{MAX_CONCURRENCY}")
        if not 1 <= self.users_per_request <= MAX_USERS:
            raise UsageError(f"--users-per-request: 1..{MAX_USERS}")
        if self.duration is not None and not 0 < self.duration <= MAX_DURATION_S:
            raise UsageError(f"--duration: more than 0, at most {MAX_DURATION_S:g} seconds")
        if self.requests is not None and not 1 <= self.requests <= MAX_REQUESTS:
            raise UsageError(f"--requests: 1..{MAX_REQUESTS}")
        if self.rate is not None and not self.rate > 0:
            raise UsageError("--rate: must be more than 0 requests per second")
        if not self.timeout > 0:
            raise UsageError("--timeout: must be more than 0 seconds")
        if self.insecure and (self.ca_file or self.ssl_context):
            raise UsageError("--insecure and --ca exclude each other")

    @property
    def effective_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/oauth2/token", "", ""))

    @property
    def time_limit(self) -> float:
        if self.duration is not None:
            return self.duration
        return MAX_DURATION_S if self.requests is not None else DEFAULT_DURATION_S

    def client_ssl(self) -> ssl.SSLContext | bool:
        """What the connector verifies with; a bad ``--ca`` file is a usage error."""
        if self.ssl_context is not None:
            return self.ssl_context
        if self.insecure:
            return False  # aiohttp: no certificate or hostname verification
        if self.ca_file:
            try:
                return ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"--ca {self.ca_file!r}: cannot load ({exc})") from exc
        return True


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


# What a failed push may raise; anything else is a bug in the simulator and must surface.
_PUSH_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, TokenFetchError)


class _Tokens:
    """IRIS's one bearer token: reused until a 401, then replaced by a single fetch."""

    def __init__(self, session: aiohttp.ClientSession, options: LoadOptions) -> None:
        self._session = session
        self._url = options.effective_token_url
        self._headers = {
            "User-Agent": IRIS_USER_AGENT,
            "Authorization": f"Basic {options.credential}",
            "Content-Type": TOKEN_CONTENT_TYPE,
            "Accept-Encoding": "gzip",
        }
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
        async with self._session.post(self._url, data=TOKEN_BODY, headers=self._headers) as resp:
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


def _payload_pool(users: int, seed: int) -> list[bytes]:
    """Distinct bodies made before the clock starts, so generation is never measured."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    pool: list[bytes] = []
    size = 0
    while len(pool) < POOL_SIZE and (not pool or size < POOL_MAX_BYTES):
        pool.append(make_payload_bytes(users, rng))
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
        self.headers = {
            "User-Agent": IRIS_USER_AGENT,
            "Content-Type": "application/json",
            "Accept-Encoding": "gzip",
        }
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadline = self.started + options.time_limit
        self.claimed = 0
        self.done = 0
        self.latencies: list[float] = []
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
            async with self.session.request(
                self.options.method, self.options.url, data=body, headers=headers
            ) as resp:
                await resp.read()
            self.latencies.append(time.perf_counter() - begun)
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
        columns = (TextColumn("[bold]IRIS push"), BarColumn(), TaskProgressColumn(),
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
    pool = await asyncio.to_thread(_payload_pool, options.users_per_request, options.seed)
    connector = aiohttp.TCPConnector(limit=options.concurrency, ssl=verify)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=options.timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        # The seed's requests list no Accept header; send only what IRIS sends.
        skip_auto_headers=("Accept",),
    ) as session:
        tokens = _Tokens(session, options)
        try:
            await tokens.current()
        except _PUSH_ERRORS as exc:
            raise LoadTestError(
                f"no token from {options.effective_token_url}: {error_kind(exc)} ({exc})"
            ) from exc
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
    notes: list[str] = []
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
    )
