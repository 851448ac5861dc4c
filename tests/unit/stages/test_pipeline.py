"""``build_routes``: the route table of one configuration, and each route's handler running
the stages in their listed order (stages/pipeline.py): the first failure answers, and
nothing refused reaches the delivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web

from gateway import keys
from gateway.config import (
    ClientSettings,
    RouteSettings,
    ServerSettings,
    Settings,
    SignatureSettings,
    SigningKeySettings,
    TLSSettings,
    TokenSettings,
)
from gateway.errors import (
    ForbiddenError,
    GatewayError,
    InsufficientScopeError,
    InvalidPayloadError,
    MissingTokenError,
    UnsupportedMediaTypeError,
)
from gateway.forward.upstream import Forwarder
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.keys import KeySet
from gateway.oauth.tokens import TokenIssuer, TokenVerifier
from gateway.observe.metrics import Metrics
from gateway.stages.pipeline import build_routes
from gateway.stages.signature import SignatureError
from gateway.tools.payloads import IRIS_SHAPED_PUSH

from stage_harness import mocked

TOKENS = TokenSettings(issuer="https://gateway.test", audience="partner-api", algorithm="HS256",
                       keys=(SigningKeySettings(kid="h1", secret="s" * 48),))
AAM = ClientSettings(client_id="aam", scopes=("segments:write", "segments:read"))
FENCED = ClientSettings(client_id="fenced", scopes=("segments:write",),
                        allowed_cidrs=(ipaddress.ip_network("198.51.100.0/24"),))
UPSTREAM = ("http://127.0.0.1:9/legacy",)
AAM_ROUTE = RouteSettings(path="/segments/aam", methods=("POST", "PUT"), upstreams=UPSTREAM,
                          scope="segments:write")
REPORT_ROUTE = RouteSettings(path="/segments/report", upstreams=UPSTREAM,
                             payload_mode="report")
SIGNED_ROUTE = RouteSettings(path="/segments/signed", upstreams=UPSTREAM, auth="signature",
                             signature=SignatureSettings(keys=("adobe-key",)))


class RecordingForwarder:
    """The delivery's stand-in: records what reached it and answers 200."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def forward(self, request: web.Request, route: RouteSettings, body: bytes,
                      **options: Any) -> web.Response:
        self.calls.append({"path": route.path, "body": body, **options})
        response = web.Response(status=200)
        response[keys.UPSTREAM_STATUS] = 200
        return response


def settings(*routes: RouteSettings) -> Settings:
    server = ServerSettings(tls=TLSSettings(cert_file=Path("server.crt"),
                                            key_file=Path("server.key")))
    return Settings(source=Path("config.yaml"), server=server, tokens=TOKENS,
                    clients=(AAM, FENCED), routes=routes or (AAM_ROUTE, REPORT_ROUTE,
                                                             SIGNED_ROUTE))


@pytest.fixture
def forwarder() -> RecordingForwarder:
    return RecordingForwarder()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def table(forwarder: RecordingForwarder, metrics: Metrics) -> dict[str, Any]:
    keyset = KeySet.from_settings(TOKENS)
    verifier = TokenVerifier(TOKENS, keyset, ClientRegistry.from_settings((AAM, FENCED)))
    return build_routes(settings(), verifier, cast(Forwarder, forwarder), metrics)


def token(client: ClientSettings = AAM, *scopes: str) -> str:
    minted, _ = TokenIssuer(TOKENS, KeySet.from_settings(TOKENS)).mint(
        client, scopes or ("segments:write",))
    return minted


def push(path: str = "/segments/aam", *, bearer: str | None = None,
         content_type: str = "application/json", body: bytes = IRIS_SHAPED_PUSH,
         peer: str = "192.0.2.10", extra: list[tuple[str, str]] | None = None
         ) -> web.Request:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if bearer is not None:
        headers.append(("Authorization", f"Bearer {bearer}"))
    return mocked("POST", path, headers + (extra or []), peer=peer, body=body)


def test_the_table_has_a_handler_per_method_and_the_allow_list(table: dict[str, Any]
                                                               ) -> None:
    entry = table["/segments/aam"]
    assert set(entry.handlers) == {"POST", "PUT"}
    assert entry.allowed == ("POST", "PUT")
    assert entry.handlers["POST"] is entry.handlers["PUT"]
    assert set(table) == {"/segments/aam", "/segments/report", "/segments/signed"}


def test_a_spooling_route_needs_a_spool(forwarder: RecordingForwarder,
                                        metrics: Metrics) -> None:
    spooled = RouteSettings(path="/segments/spooled", upstreams=UPSTREAM, delivery="spool")
    verifier = TokenVerifier(TOKENS, KeySet.from_settings(TOKENS),
                             ClientRegistry.from_settings((AAM,)))
    with pytest.raises(ValueError, match="spool"):
        build_routes(settings(spooled), verifier, cast(Forwarder, forwarder), metrics)


async def test_a_valid_push_is_delivered_once(table: dict[str, Any],
                                              forwarder: RecordingForwarder) -> None:
    request = push(bearer=token())
    response = await table["/segments/aam"].handlers["POST"](request)
    assert response.status == 200
    [call] = forwarder.calls
    assert call["body"] == IRIS_SHAPED_PUSH
    assert (call["client_id"], call["scope"]) == ("aam", "segments:write")
    assert call["request_id"] == request[keys.TRACE].request_id
    assert call["client_address"] == "192.0.2.10"
    assert request[keys.TRACE].client_id == "aam"


@pytest.mark.parametrize(("case", "error", "status", "code"), [
    ("no-token", MissingTokenError, 401, "invalid_token"),
    ("wrong-scope", InsufficientScopeError, 403, "insufficient_scope"),
    ("outside-cidrs", ForbiddenError, 403, "forbidden"),
    ("wrong-type", UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    ("bad-payload", InvalidPayloadError, 400, "invalid_payload"),
])
async def test_refusals_raise_and_never_reach_the_backend(
        table: dict[str, Any], forwarder: RecordingForwarder, case: str,
        error: type[GatewayError], status: int, code: str) -> None:
    request = {
        "no-token": lambda: push(),
        "wrong-scope": lambda: push(bearer=token(AAM, "segments:read")),
        "outside-cidrs": lambda: push(bearer=token(FENCED)),
        "wrong-type": lambda: push(bearer=token(), content_type="text/plain"),
        "bad-payload": lambda: push(bearer=token(), body=b'{"Users": []}'),
    }[case]()
    with pytest.raises(error) as caught:
        await table["/segments/aam"].handlers["POST"](request)
    assert (caught.value.status_code, caught.value.error) == (status, code)
    assert forwarder.calls == []


async def test_the_first_failure_answers(table: dict[str, Any]) -> None:
    # No token, a wrong media type and a bad body: the token stage (3) speaks first.
    with pytest.raises(MissingTokenError):
        await table["/segments/aam"].handlers["POST"](
            push(content_type="text/plain", body=b"[]"))
    # A good token but the wrong media type and body: the header stage (5) before payload (7).
    with pytest.raises(UnsupportedMediaTypeError):
        await table["/segments/aam"].handlers["POST"](
            push(bearer=token(), content_type="text/plain", body=b"[]"))


async def test_a_payload_violation_names_its_json_path(table: dict[str, Any],
                                                       metrics: Metrics) -> None:
    body = b'{"Users": [{"AAM_UUID": "u", "Segments": [{"Segment_ID": "1", "Status": 7}]}]}'
    with pytest.raises(InvalidPayloadError) as caught:
        await table["/segments/aam"].handlers["POST"](push(bearer=token(), body=body))
    assert caught.value.text == "Users[0].Segments[0].Status: must be 1 or 0"
    assert metrics.counts[("gateway_payload_violations_total",
                           ("/segments/aam", "invalid_value"))] == 1


async def test_report_mode_counts_and_forwards(table: dict[str, Any],
                                               forwarder: RecordingForwarder,
                                               metrics: Metrics) -> None:
    response = await table["/segments/report"].handlers["POST"](
        push("/segments/report", bearer=token(), body=b'{"Users": []}'))
    assert response.status == 200 and len(forwarder.calls) == 1
    assert sum(n for (name, _), n in metrics.counts.items()
               if name == "gateway_payload_violations_total") == 1


def signature(body: bytes, key: str = "adobe-key") -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha1).digest()).decode()


async def test_a_signature_route_needs_no_token_but_a_signature(
        table: dict[str, Any], forwarder: RecordingForwarder) -> None:
    handler = table["/segments/signed"].handlers["POST"]
    good = push("/segments/signed", extra=[("X-Signature", signature(IRIS_SHAPED_PUSH))])
    assert (await handler(good)).status == 200
    assert forwarder.calls[0]["client_id"] is None
    for extra in ([], [("X-Signature", signature(IRIS_SHAPED_PUSH, "other-key"))]):
        with pytest.raises(SignatureError) as caught:
            await handler(push("/segments/signed", extra=extra))
        assert (caught.value.status_code, caught.value.error) == (401, "invalid_token")
    assert len(forwarder.calls) == 1
