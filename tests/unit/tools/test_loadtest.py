"""The IRIS simulator (``gateway loadtest``, docs/operations.md) against a fake IRIS partner over
TLS.

The fake partner checks what docs/adobe.md says IRIS sends: Adobe's sample token request's headers
and body, then ``Authorization: Bearer``, ``Accept-Encoding: gzip`` and ``Content-Type:
application/json`` on every push. It answers ``401`` when told to, so the token re-fetch
(and its single flight) is proven by counting token fetches, not by timing anything.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import ssl
from collections import Counter
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from rich.console import Console

from gateway.tools.loadtest import error_kind, run_load
from gateway.tools.loadtest_bottleneck import GatewayTimes, parse, verdict
from gateway.tools.loadtest_cli import add_arguments, run
from gateway.tools.loadtest_options import (
    IRIS_USER_AGENT,
    LoadOptions,
    LoadTestError,
    UsageError,
    basic_credential,
    is_loopback_host,
)
from gateway.tools.loadtest_report import LatencySummary, LoadReport, percentile

# Adobe's sample opaque credential (docs/adobe.md): 77 characters, not base64 of anything.
SEED_CREDENTIAL = "zq2LOO1CcYGrODS5nXiNHpEz97eCpVHAoMF8pAgCntXAzxp5uRV7DTAE2qtPLjhMQwrEX3O6MHV4S"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ssl_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ssl_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


class FakePartner:
    """A partner's token and segment endpoints that record what IRIS's simulator sent."""

    def __init__(self, credential: str, *, fail_at: int | None = None, hold: int = 0) -> None:
        self.credential = credential
        self.fail_at = fail_at  # the n-th push (1-based) answers 401 once
        self.hold = hold  # the first `hold` pushes wait for each other, then all get 401
        self.valid: set[str] = set()
        self.token_fetches = 0
        self.pushes = 0
        self.used: list[str] = []
        self.users: Counter[int] = Counter()
        self.methods: Counter[str] = Counter()
        self.problems: list[str] = []
        self._held = 0
        self._all_held = asyncio.Event()
        self.stall = asyncio.Event()  # cleared: pushes stall when `stalling` is set
        self.stalling = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth2/token", self.token)
        app.router.add_route("*", "/segments/aam", self.segments)
        return app

    def expect(self, request: web.Request, name: str, value: str) -> None:
        if request.headers.get(name) != value:
            self.problems.append(f"{request.path} {name}: {request.headers.get(name)!r}")

    async def token(self, request: web.Request) -> web.Response:
        self.token_fetches += 1
        self.expect(request, "User-Agent", IRIS_USER_AGENT)
        self.expect(request, "Authorization", f"Basic {self.credential}")
        self.expect(request, "Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
        self.expect(request, "Accept-Encoding", "gzip")
        if await request.read() != b"grant_type=client_credentials":
            self.problems.append("token body")
        if request.headers.get("Authorization") != f"Basic {self.credential}":
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"token-{self.token_fetches}"
        self.valid.add(token)
        response = web.json_response({"token_type": "Bearer", "access_token": token})
        # As in Adobe's sample: the answer is gzip-compressed because the request allowed it.
        response.enable_compression(web.ContentCoding.gzip)
        return response

    async def segments(self, request: web.Request) -> web.Response:
        self.pushes += 1
        n = self.pushes
        self.methods[request.method] += 1
        for name, value in (
            ("User-Agent", IRIS_USER_AGENT),
            ("Accept-Encoding", "gzip"),
            ("Content-Type", "application/json"),
        ):
            self.expect(request, name, value)
        doc = await request.json()
        self.users[len(doc["Users"])] += 1
        if not all(isinstance(doc[k], str) for k in ("User_DPID", "User_count")):
            self.problems.append("numbers must be strings")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.used.append(token)
        if self.stalling:
            await self.stall.wait()
        if n <= self.hold:
            # Hold the first pushes until all are in flight, then revoke their token: every
            # worker sees a 401 for the same token at once.
            self._held += 1
            if self._held == self.hold:
                self._all_held.set()
            await self._all_held.wait()
            self.valid.discard(token)
        if token not in self.valid or n == self.fail_at:
            return web.json_response(
                {"error": "invalid_token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="aam", error="invalid_token"'},
            )
        return web.Response(text="OK")


async def start(
    aiohttp_server: AiohttpServer, ssl_ctx: ssl.SSLContext, partner: FakePartner
) -> str:
    server = await aiohttp_server(partner.app(), ssl=ssl_ctx)
    return str(server.make_url("/segments/aam"))


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gateway loadtest")
    add_arguments(parser)
    return parser.parse_args(list(argv))


async def test_reuses_token_and_refetches_once_after_401(
    aiohttp_server: AiohttpServer, ssl_ctx: ssl.SSLContext, client_ssl_ctx: ssl.SSLContext
) -> None:
    partner = FakePartner(SEED_CREDENTIAL, fail_at=20)
    url = await start(aiohttp_server, ssl_ctx, partner)
    options = LoadOptions(
        url=url, credential=SEED_CREDENTIAL, requests=50, concurrency=4, users_per_request=3,
        ssl_context=client_ssl_ctx,
    )
    report = await run_load(options)

    assert partner.problems == []
    assert report.requests == 50 == partner.pushes
    assert dict(report.status_counts) == {200: 49, 401: 1}
    assert report.errors == {}
    assert report.token_fetches == 2 == partner.token_fetches
    assert report.successes == 49
    assert report.success_rate == pytest.approx(0.98)
    # Reused: only two tokens ever went out, and after the refresh the new one is used.
    assert set(partner.used) == {"token-1", "token-2"}
    assert partner.used[-1] == "token-2"
    assert partner.users == Counter({3: 50})
    assert partner.methods == Counter({"POST": 50})
    assert 0 < report.latency_ms.p50 <= report.latency_ms.p90 <= report.latency_ms.p99
    assert report.latency_ms.p99 <= report.latency_ms.max


async def test_concurrent_401s_share_one_token_fetch(
    aiohttp_server: AiohttpServer, ssl_ctx: ssl.SSLContext, client_ssl_ctx: ssl.SSLContext
) -> None:
    partner = FakePartner(SEED_CREDENTIAL, hold=8)
    url = await start(aiohttp_server, ssl_ctx, partner)
    report = await run_load(
        LoadOptions(
            url=url, credential=SEED_CREDENTIAL, requests=40, concurrency=8, method="GET",
            ssl_context=client_ssl_ctx,
        )
    )
    assert partner.problems == []
    assert dict(report.status_counts) == {401: 8, 200: 32}
    assert report.token_fetches == 2 == partner.token_fetches
    assert partner.methods == Counter({"GET": 40})


async def test_cli_json_with_rfc_credentials_and_ca_file(
    aiohttp_server: AiohttpServer,
    ssl_ctx: ssl.SSLContext,
    ca_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    partner = FakePartner(basic_credential("iris client", "s3cr:t/+"))
    url = await start(aiohttp_server, ssl_ctx, partner)
    args = cli_args(
        url, "--client-id", "iris client", "--secret", "s3cr:t/+", "--ca", str(ca_file),
        "--requests", "30", "--concurrency", "5", "--rate", "5000", "--json",
    )
    # run() owns its event loop, so it runs in a thread while this loop serves the partner.
    assert await asyncio.to_thread(run, args) == 0

    doc = json.loads(capsys.readouterr().out)
    assert partner.problems == []
    assert doc["requests"] == 30 == partner.pushes
    assert doc["status_counts"] == {"200": 30}
    assert doc["success_rate"] == 1.0
    assert doc["token_fetches"] == 1
    assert doc["errors"] == {}
    assert set(doc["latency_ms"]) == {"p50", "p90", "p99", "max", "mean"}
    assert doc["simulator"]["cpu_s"] >= 0
    assert isinstance(doc["simulator"]["bottleneck"], bool)


async def test_duration_bound_run_with_progress_bar(
    aiohttp_server: AiohttpServer, ssl_ctx: ssl.SSLContext, client_ssl_ctx: ssl.SSLContext
) -> None:
    partner = FakePartner(SEED_CREDENTIAL)
    url = await start(aiohttp_server, ssl_ctx, partner)
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    options = LoadOptions(
        url=url, credential=SEED_CREDENTIAL, duration=0.3, concurrency=2, progress=True,
        ssl_context=client_ssl_ctx,
    )
    report = await run_load(options, console=console)
    assert report.requests == partner.pushes > 0
    assert report.status_counts == {200: report.requests}


async def test_timeouts_are_counted_as_errors(
    aiohttp_server: AiohttpServer, ssl_ctx: ssl.SSLContext, client_ssl_ctx: ssl.SSLContext
) -> None:
    partner = FakePartner(SEED_CREDENTIAL)
    partner.stalling = True
    url = await start(aiohttp_server, ssl_ctx, partner)
    try:
        report = await run_load(
            LoadOptions(
                url=url, credential=SEED_CREDENTIAL, requests=3, concurrency=3, timeout=0.2,
                ssl_context=client_ssl_ctx,
            )
        )
    finally:
        partner.stall.set()
    assert report.requests == 3
    assert report.errors == {"timeout": 3}
    assert report.successes == 0


async def test_wrong_credential_stops_before_any_push(
    aiohttp_server: AiohttpServer, ssl_ctx: ssl.SSLContext, client_ssl_ctx: ssl.SSLContext
) -> None:
    partner = FakePartner(SEED_CREDENTIAL)
    url = await start(aiohttp_server, ssl_ctx, partner)
    options = LoadOptions(url=url, credential="wrong", requests=5, ssl_context=client_ssl_ctx)
    with pytest.raises(LoadTestError, match="answered 401"):
        await run_load(options)
    assert partner.pushes == 0


async def test_untrusted_certificate_is_a_tls_error(
    aiohttp_server: AiohttpServer, ssl_ctx: ssl.SSLContext, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await start(aiohttp_server, ssl_ctx, FakePartner(SEED_CREDENTIAL))
    # No --ca: the system store does not know the trustme CA.
    args = cli_args(url, "--credential", SEED_CREDENTIAL, "--requests", "1", "--json")
    assert await asyncio.to_thread(run, args) == 1
    err = capsys.readouterr().err
    assert "tls_error" in err
    assert "pass --ca with the CA that signed it" in err


def test_connect_error_exits_1(unused_tcp_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    args = cli_args(
        f"https://127.0.0.1:{unused_tcp_port}/segments/aam", "--credential", "c",
        "--requests", "1", "--insecure",
    )
    assert run(args) == 1
    err = capsys.readouterr().err
    assert "--insecure" in err
    assert "connect_error" in err


# Refusals, grouped: non-loopback targets and options that cannot work.


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/segments/aam",
        "https://10.0.0.1:8443/segments/aam",
        "https://[2001:db8::1]/segments/aam",
        "https://127.0.0.1.example.com/segments/aam",
        "https://localhost.example.com/segments/aam",
        "https://0.0.0.0:8443/segments/aam",
    ],
)
def test_refuses_non_loopback_target(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli_args(url, "--credential", "c", "--requests", "1")) == 2
    assert "not loopback" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--allow-remote"):
        LoadOptions(url=url, credential="c")
    # Allowed only when asked for explicitly (no request is made here).
    assert LoadOptions(url=url, credential="c", allow_remote=True).url == url


def test_refuses_non_loopback_token_url() -> None:
    with pytest.raises(UsageError, match="--token-url"):
        LoadOptions(
            url="https://127.0.0.1/segments/aam",
            token_url="https://auth.example.com/oauth2/token",
            credential="c",
        )


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "::1", "[::1]", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "argv",
    [
        ["--requests", "1"],  # no credentials
        ["--credential", "c", "--client-id", "a", "--secret", "b"],
        ["--client-id", "a"],
        ["--credential", "c", "--concurrency", "0"],
        ["--credential", "c", "--requests", "0"],
        ["--credential", "c", "--duration", "-1"],
        ["--credential", "c", "--rate", "0"],
        ["--credential", "c", "--users-per-request", "0"],
        ["--credential", "c", "--ca", "/nonexistent/ca.pem"],
        ["--credential", "line\r\nX-Injected: 1"],
        ["--credential", "caf\u00e9"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli_args("https://127.0.0.1:8443/segments/aam", *argv)) == 2
    assert capsys.readouterr().err.startswith("gateway loadtest: ")


def test_ca_and_insecure_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        cli_args("https://127.0.0.1/segments/aam", "--ca", "x.pem", "--insecure")


def test_token_url_defaults_to_the_origin() -> None:
    options = LoadOptions(url="https://127.0.0.1:8443/segments/aam?x=1", credential="c")
    assert options.effective_token_url == "https://127.0.0.1:8443/oauth2/token"
    assert "credential" not in repr(options)


def test_basic_credential_follows_rfc6749_2_3_1() -> None:
    # RFC 6749 §2.3.1's own example.
    assert basic_credential("s6BhdRkqt3", "gX1fBat3bV") == "czZCaGRSa3F0MzpnWDFmQmF0M2JW"
    # Each part is form-urlencoded first, so a ':' in the id cannot split the pair wrongly.
    import base64

    decoded = base64.b64decode(basic_credential("a:b c", "p/+")).decode()
    assert decoded == "a%3Ab+c:p%2F%2B"


def test_error_kinds() -> None:
    import aiohttp

    assert error_kind(TimeoutError()) == "timeout"
    assert error_kind(aiohttp.ServerDisconnectedError()) == "disconnected"
    assert error_kind(ssl.SSLError()) == "tls_error"
    assert error_kind(aiohttp.ClientPayloadError("x")) == "payload_error"


# The report and its arithmetic.


def test_percentile_nearest_rank() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [percentile(values, p) for p in (0, 5, 30, 40, 50, 100)] == [
        15.0, 15.0, 20.0, 20.0, 35.0, 50.0,
    ]
    hundred = [float(i) for i in range(1, 101)]
    assert (percentile(hundred, 50), percentile(hundred, 90), percentile(hundred, 99)) == (
        50.0, 90.0, 99.0,
    )
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_latency_summary_in_milliseconds() -> None:
    summary = LatencySummary.from_seconds([0.004, 0.001, 0.003, 0.002])
    assert (summary.p50, summary.p90, summary.max) == pytest.approx((2.0, 4.0, 4.0))
    assert summary.mean == pytest.approx(2.5)


def make_report(cpu_s: float) -> LoadReport:
    return LoadReport(
        url="https://[::1]:8443/segments/aam", method="POST", concurrency=16,
        users_per_request=10, rate=None, requests=100, duration_s=2.0,
        latency_ms=LatencySummary.from_seconds([0.001] * 10),
        status_counts={200: 90, 503: 8}, errors={"timeout": 2}, token_fetches=1, cpu_s=cpu_s,
        cpu_count=2,
    )


def test_report_counts_only_200_as_success() -> None:
    report = make_report(cpu_s=0.5)
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["requests_per_s"] == 50.0
    assert doc["successes"] == 90
    assert doc["success_rate"] == 0.9
    assert doc["status_counts"] == {"200": 90, "503": 8}
    assert doc["simulator"]["cpu_utilisation"] == 0.25
    assert doc["simulator"]["cpu_per_request_us"] == 5000.0
    assert doc["simulator"]["bottleneck"] is False
    assert doc["bottleneck"]["where"] == "unknown"
    assert "pass --admin-url" in report.format_text()


def test_report_names_the_simulator_as_bottleneck() -> None:
    report = make_report(cpu_s=1.9)
    assert report.to_dict()["simulator"]["bottleneck"] is True
    assert "The simulator, not the gateway, was the bottleneck" in report.format_text()
    out = io.StringIO()
    report.render(Console(file=out, width=200))
    text = out.getvalue()
    assert "https://[::1]:8443/segments/aam" in text
    assert "bottleneck" in text


METRICS_TEXT = """\
# TYPE gateway_request_duration_seconds histogram
gateway_request_duration_seconds_bucket{le="+Inf",route="/segments/aam"} 100.0
gateway_request_duration_seconds_count{route="/segments/aam"} 100.0
gateway_request_duration_seconds_sum{route="/segments/aam"} 2.0
gateway_request_duration_seconds_count{route="/oauth2/token"} 5.0
gateway_request_duration_seconds_sum{route="/oauth2/token"} 9.0
# TYPE gateway_upstream_duration_seconds histogram
gateway_upstream_duration_seconds_count{route="/segments/aam"} 100.0
gateway_upstream_duration_seconds_sum{route="/segments/aam"} 1.5
"""


def test_gateway_times_come_from_the_routes_own_series() -> None:
    times = parse(METRICS_TEXT, "/segments/aam")
    assert times == GatewayTimes(100.0, 2.0, 1.5)
    assert times - GatewayTimes(40.0, 1.0, 1.0) == GatewayTimes(60.0, 1.0, 0.5)


@pytest.mark.parametrize(("cpu", "times", "where"), [
    (0.95, GatewayTimes(100, 2.0, 1.9), "simulator"),  # the simulator first: it measured itself
    (0.30, GatewayTimes(100, 2.0, 1.5), "backend"),
    (0.30, GatewayTimes(100, 2.0, 0.2), "gateway"),
    (0.30, None, "unknown"),
    (0.30, GatewayTimes(0, 0.0, 0.0), "unknown"),
])
def test_verdicts(cpu: float, times: GatewayTimes | None, where: str) -> None:
    found = verdict(cpu, times, None)
    assert found.where == where
    if where in ("backend", "gateway"):
        assert "ms per request in the gateway" in found.why
