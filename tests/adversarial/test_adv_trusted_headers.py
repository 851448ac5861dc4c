"""Headers the backend may trust are the gateway's alone (docs/security.md, "Headers dropped
before forwarding"), proven against a real WSGI backend.

CGI and WSGI turn a header name into ``HTTP_`` + upper case with ``-`` made ``_``, so
``X_Gateway_Client_Id`` and ``X-Gateway-Client-Id`` become the same variable: the outside
attack run reached a ``wsgiref`` backend with ``HTTP_X_GATEWAY_CLIENT_ID="admin,aam"``. The
backend here is ``wsgiref``'s own server on a loopback port, recording each environ.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from gateway.config import Settings
from gateway.serve.server import RunningGateway

from adv_harness import SEED_PAYLOAD, fetch_token, raw_exchange

# Names with "_": a CGI or WSGI backend reads each as the gateway's own dash-named header.
UNDERSCORED = {"X_Gateway_Client_Id": "admin", "X_Gateway_Scope": "admin",
               "X_Forwarded_For": "10.9.9.9", "X_Real_IP": "10.9.9.9"}
# Headers a front end sets and some backend believes: client address, URL rewrite, method
# override, authenticated user.
TRUSTED_BY_BACKENDS = {
    "X-Real-IP": "10.9.9.9", "True-Client-IP": "10.9.9.9",
    "X-Client-IP": "10.9.9.9", "CF-Connecting-IP": "10.9.9.9",
    "Forwarded": "for=10.9.9.9;proto=https", "X-Original-URL": "/admin",
    "X-Rewrite-URL": "/admin", "X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/admin",
    "X-Forwarded-Server": "internal", "X-HTTP-Method-Override": "DELETE",
    "X-HTTP-Method": "DELETE", "X-Method-Override": "DELETE", "Remote-User": "admin",
    "X-Remote-User": "admin", "X-Authenticated-User": "admin",
    "X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-S-DN": "CN=admin",
    "X-Client-Cert": "forged",
}
IMPERSONATING = {**UNDERSCORED, **TRUSTED_BY_BACKENDS}


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def wsgi_backend() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real ``wsgiref`` server on loopback: (base URL, the HTTP_* environ of each push)."""
    seen: list[dict[str, str]] = []

    def app(environ: dict[str, Any],
            start_response: Callable[[str, list[tuple[str, str]]], Any]) -> Iterable[bytes]:
        seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok":true}']

    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _push(token: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", f"Authorization: Bearer {token}",
             "Content-Type: application/json", f"Content-Length: {len(SEED_PAYLOAD)}",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + SEED_PAYLOAD


Gateway = Callable[[dict[str, Any]], Awaitable[RunningGateway]]


@pytest.fixture
def gateway_for(adv_config: Callable[..., dict[str, Any]],
                write_config: Callable[[dict[str, Any]], Settings],
                start: Callable[[Settings], Awaitable[RunningGateway]],
                wsgi_backend: tuple[str, list[dict[str, str]]]) -> Gateway:
    """The gateway in front of the WSGI backend, with changes to its second route."""

    async def make(second_route: dict[str, Any]) -> RunningGateway:
        config = adv_config(wsgi_backend[0] + "/segments/aam")
        config["routes"][1].update(second_route)
        return await start(write_config(config))

    return make


@pytest.mark.parametrize("sent", [UNDERSCORED, TRUSTED_BY_BACKENDS],
                         ids=["underscored names", "headers backends trust"])
async def test_impersonating_headers_never_reach_a_wsgi_backend(
        wsgi_backend: tuple[str, list[dict[str, str]]], gateway_for: Gateway, session: Any,
        client_ssl_ctx: ssl.SSLContext, caplog: pytest.LogCaptureFixture,
        sent: dict[str, str]) -> None:
    seen = wsgi_backend[1]
    port = (await gateway_for({})).ports["https"]
    token = await fetch_token(session, port)
    with caplog.at_level(logging.INFO):
        answers = await raw_exchange(port, client_ssl_ctx, _push(
            token, "/segments/aam", {**sent, "X-Partner-Note": "kept"}))
    assert answers[0].status == 200, answers
    environ = seen[-1]
    # Only the gateway speaks for the caller: its own identity and address, nothing else.
    assert environ["HTTP_X_GATEWAY_CLIENT_ID"] == "aam"
    assert environ["HTTP_X_GATEWAY_SCOPE"] == "segments:write"
    assert environ["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
    assert environ["HTTP_X_PARTNER_NOTE"] == "kept"  # an ordinary header still passes
    forged = set(sent.values())
    # The trace context and the request id are the gateway's own (observe/trace.py): a
    # random hex id may hold a short forged value ("443") by chance, so they are left out
    # of the search.
    own = {"HTTP_TRACEPARENT", "HTTP_TRACESTATE", "HTTP_X_REQUEST_ID"}
    assert not {k: v for k, v in environ.items()
                if k not in own and any(f in v for f in forged)}, environ
    for name in sent:
        variable = "HTTP_" + name.upper().replace("-", "_")
        assert variable not in environ or variable in (
            "HTTP_X_GATEWAY_CLIENT_ID", "HTTP_X_GATEWAY_SCOPE", "HTTP_X_FORWARDED_FOR"), name
    # A count is logged, never a name or a value (Forwarded is replaced as the gateway's
    # own header, like X-Forwarded-For, and not counted).
    dropped = [r for r in caplog.records if getattr(r, "reason_id", "") == "untrusted_headers"]
    assert [getattr(r, "count", None) for r in dropped] == [
        len([name for name in sent if name != "Forwarded"])]
    assert not any(value in caplog.text for value in forged)


async def test_a_route_passes_only_the_headers_it_names(
        wsgi_backend: tuple[str, list[dict[str, str]]], gateway_for: Gateway, session: Any,
        client_ssl_ctx: ssl.SSLContext) -> None:
    seen = wsgi_backend[1]
    port = (await gateway_for({"pass_headers": ["X-Real-IP", "X_Partner_Tag"]})).ports["https"]
    token = await fetch_token(session, port)
    sent = {**IMPERSONATING, "X_Partner_Tag": "blue"}
    answers = await raw_exchange(port, client_ssl_ctx, _push(token, "/any-json", sent))
    assert answers[0].status == 200, answers
    assert json.loads(answers[0].body) == {"ok": True}
    environ = seen[-1]
    assert environ["HTTP_X_REAL_IP"] == "10.9.9.9"
    assert environ["HTTP_X_PARTNER_TAG"] == "blue"
    assert environ["HTTP_X_GATEWAY_CLIENT_ID"] == "aam"  # never passable
    assert "HTTP_X_HTTP_METHOD_OVERRIDE" not in environ and "HTTP_TRUE_CLIENT_IP" not in environ
    # Only on the route that names them.
    answers = await raw_exchange(port, client_ssl_ctx, _push(token, "/segments/aam", sent))
    assert answers[0].status == 200, answers
    assert "HTTP_X_REAL_IP" not in seen[-1] and "HTTP_X_PARTNER_TAG" not in seen[-1]


@pytest.mark.parametrize("name, reason", [
    ("X-Forwarded-For", "is set or removed by the gateway itself"),
    ("X-Gateway-Client-Id", "is set or removed by the gateway itself"),
    ("Authorization", "use forward_authorization: true instead"),
    ("Bad Name", "must be a header field name"),
])
def test_a_route_cannot_pass_the_gateways_own_headers(
        adv_config: Callable[..., dict[str, Any]],
        write_config: Callable[[dict[str, Any]], Settings], name: str, reason: str) -> None:
    from gateway.config import ConfigError

    config = adv_config("http://127.0.0.1:9/segments/aam")
    config["routes"][0]["pass_headers"] = ["X-Real-IP", name]
    with pytest.raises(ConfigError) as caught:
        write_config(config)
    assert f"routes[0].pass_headers[1]: {reason}" in str(caught.value)


async def test_cookie_is_dropped_unless_the_route_passes_it(
        wsgi_backend: tuple[str, list[dict[str, str]]], gateway_for: Gateway, session: Any,
        client_ssl_ctx: ssl.SSLContext) -> None:
    """A browser's or a partner's cookie is a credential for some other service: it reaches
    the backend only on a route that names ``Cookie`` in ``pass_headers``."""
    seen = wsgi_backend[1]
    port = (await gateway_for({"pass_headers": ["Cookie"]})).ports["https"]
    token = await fetch_token(session, port)
    sent = {"Cookie": "session=stolen-elsewhere", "X-Partner-Note": "kept"}
    answers = await raw_exchange(port, client_ssl_ctx, _push(token, "/segments/aam", sent))
    assert answers[0].status == 200, answers
    assert "HTTP_COOKIE" not in seen[-1], seen[-1]
    assert seen[-1]["HTTP_X_PARTNER_NOTE"] == "kept"
    answers = await raw_exchange(port, client_ssl_ctx, _push(token, "/any-json", sent))
    assert answers[0].status == 200, answers
    assert seen[-1]["HTTP_COOKIE"] == "session=stolen-elsewhere"
