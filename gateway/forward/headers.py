"""The header block a proxied request carries to the backend (docs/architecture.md), built in one
place.

Both ways of delivering a request use it: the direct forward (``upstream.Forwarder``) builds
it and sends it at once; spool delivery (``gateway/spool/accept.py``) builds the very same bytes at
acceptance, stores them, and the deliverer sends them later, so a spooled request reaches
the backend exactly as a direct one would have. The rules:

* RFC 9110 §7.6.1: ``Connection``, every field it names, and the hop-by-hop fields
  (``Keep-Alive``, ``Proxy-Authenticate``, ``Proxy-Authorization``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``) are removed.
* ``X-Forwarded-For``/``-Proto``/``-Host`` (the de-facto form of RFC 7239's ``Forwarded``)
  and ``X-Request-Id`` are set by the gateway; caller copies (and ``Forwarded``) are dropped.
* RFC 6750 tokens never reach the backend unless the route says ``forward_authorization``;
  ``X-Gateway-Client-Id``/``X-Gateway-Scope`` come only from the verified token.
* Headers a backend might trust are the gateway's alone (docs/security.md, "Headers dropped
  before forwarding"): every name holding ``_`` (CGI and WSGI read ``X_Gateway_Client_Id``
  as ``HTTP_X_GATEWAY_CLIENT_ID``, the very variable ``X-Gateway-Client-Id`` becomes; nginx
  drops them by default), and the caller's copies of client-address, scheme, URL-rewrite,
  method-override and authentication headers, and ``Cookie`` (a credential for some other
  service). A route may name some of these in
  ``pass_headers``. Only the number dropped is logged, never a name or a value.
* W3C ``traceparent``/``tracestate``: the lines ``observe/trace.py`` chose (the caller's
  when valid, else a new trace).

The start line and ``Host`` are not part of the block: they depend on which upstream of the
route's failover list is tried (``upstream.py`` adds them per attempt).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from multidict import CIMultiDictProxy

from gateway.config import RouteSettings

__all__ = ["HOP_BY_HOP", "IMPERSONATING", "IMPERSONATING_PREFIXES", "connection_tokens",
           "request_fields"]

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1, plus Proxy-Connection, which old clients still send in its place.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "proxy-connection",
})
# Host and Content-Length are set for the new connection and body; Content-Encoding because
# the header stage already inflated the body; Expect because the body is already read (a
# 100 Continue from the backend would mean nothing to anyone).
_REQUEST_DROP_KEEP_AUTH = HOP_BY_HOP | {
    "host", "content-length", "content-encoding", "expect",
    # SECURITY: set by the gateway only; a caller's copies would be believed by the backend.
    "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
    "x-gateway-client-id", "x-gateway-scope",
    # W3C trace context: the caller's copies only when valid (observe/trace.py).
    "traceparent", "tracestate",
}
# SECURITY: RFC 6750 bearer tokens stay at the gateway unless the route forwards them.
_REQUEST_DROP = _REQUEST_DROP_KEEP_AUTH | {"authorization"}
# SECURITY: what front ends set and backends believe. A caller's copy would speak for the
# gateway, so each is dropped unless the route names it in pass_headers.
IMPERSONATING = frozenset({
    # who is calling, from where
    "x-real-ip", "true-client-ip", "x-client-ip", "cf-connecting-ip", "fastly-client-ip",
    "x-cluster-client-ip", "x-original-forwarded-for", "x-forwarded", "forwarded-for",
    "x-forwarded-port", "x-forwarded-server", "x-forwarded-prefix", "x-forwarded-ssl",
    "x-forwarded-scheme", "x-url-scheme", "front-end-https", "x-original-host", "x-host",
    # which URL or method the backend should act on
    "x-original-url", "x-rewrite-url", "x-original-uri", "x-original-method",
    "x-http-method-override", "x-http-method", "x-method-override",
    # who authenticated
    "remote-user", "x-remote-user", "x-authenticated-user", "x-authenticated-userid",
    "x-forwarded-user", "x-forwarded-email", "x-auth-request-user", "x-auth-request-email",
    "x-consumer-id", "x-consumer-username", "x-consumer-custom-id", "x-credential-identifier",
    "x-client-cert", "x-client-verify", "x-forwarded-client-cert", "x-ssl-cert",
    # a credential for some other service (a browser's session, a partner's own cookie)
    "cookie",
})
IMPERSONATING_PREFIXES = ("x-ssl-client-", "ssl-client-")
# Methods whose request carries a body by definition: "Content-Length: 0" when empty.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@lru_cache(maxsize=256)
def connection_tokens(value: str) -> frozenset[str]:
    """The field names a Connection header lists (RFC 9110 §7.6.1), lower-cased."""
    return frozenset(t for t in (p.strip().lower() for p in value.split(",")) if t)


_KEEP, _DROP, _REFUSE = 0, 1, 2
_MAX_NAMES = 4096  # names remembered per route policy; a flood of new ones is not cached


class _Policy:
    """One route's verdict on a header name: kept, dropped as the gateway's own (or
    hop-by-hop), or refused as impersonating. Verdicts are remembered by the name as
    received, so the usual request costs one dict lookup per header."""

    __slots__ = ("allowed", "impersonating", "own", "verdicts")

    def __init__(self, forward_authorization: bool, passed: tuple[str, ...]) -> None:
        self.own = _REQUEST_DROP_KEEP_AUTH if forward_authorization else _REQUEST_DROP
        self.allowed = frozenset(passed) - self.own
        self.impersonating = IMPERSONATING - self.allowed
        self.verdicts: dict[str, int] = {}

    def verdict(self, name: str) -> int:
        low = name.lower()
        if low in self.own:
            verdict = _DROP
        elif low in self.impersonating or (
                ("_" in low or low.startswith(IMPERSONATING_PREFIXES))
                and low not in self.allowed):
            verdict = _REFUSE
        else:
            verdict = _KEEP
        if len(self.verdicts) < _MAX_NAMES:
            self.verdicts[name] = verdict
        return verdict


@lru_cache(maxsize=64)
def _policy(forward_authorization: bool, passed: tuple[str, ...]) -> _Policy:
    return _Policy(forward_authorization, passed)


@lru_cache(maxsize=256)
def _named_beyond(connection: str, own: frozenset[str]) -> frozenset[str]:
    """The fields a Connection header names, beyond those dropped anyway."""
    return connection_tokens(connection) - own


def request_fields(incoming: CIMultiDictProxy[str], method: str, body_length: int,
                   route: RouteSettings, *, client_id: str | None, scope: str | None,
                   request_id: str, forwarded_proto: str, client_address: str,
                   traceparent: str = "") -> bytes:
    """The header lines (each ending in CRLF, no blank line) to send the backend for a
    request that arrived with ``incoming`` headers and a body of ``body_length`` bytes."""
    policy = _policy(route.forward_authorization, route.pass_headers)
    verdicts, judge = policy.verdicts, policy.verdict
    named = (_named_beyond(",".join(incoming.getall("Connection")), policy.own)
             if "Connection" in incoming else None)
    head = []
    refused = 0
    for name, value in incoming.items():
        verdict = verdicts.get(name)
        if verdict is None:
            verdict = judge(name)
        if verdict == _KEEP and not (named and name.lower() in named):
            head.append(f"{name}: {value}\r\n")
        elif verdict == _REFUSE:
            refused += 1
    if refused:
        log.info("request headers dropped", extra={"reason_id": "untrusted_headers",
                                                   "count": refused, "request_id": request_id})
    head.append(f"X-Forwarded-For: {client_address}\r\n"
                f"X-Forwarded-Proto: {forwarded_proto}\r\n"
                f"X-Request-Id: {request_id}\r\n{traceparent}")
    host = incoming.get("Host")
    if host:
        head.append(f"X-Forwarded-Host: {host}\r\n")
    if route.identity_headers:
        if client_id is not None:
            head.append(f"X-Gateway-Client-Id: {client_id}\r\n")
        if scope is not None:
            head.append(f"X-Gateway-Scope: {scope}\r\n")
    if body_length or method in _BODY_METHODS:
        head.append(f"Content-Length: {body_length}\r\n")
    # Header text came off the wire through aiohttp's surrogateescape decoding; this gives
    # the caller's exact bytes back.
    return "".join(head).encode("utf-8", "surrogateescape")
