"""The header block a proxied request carries to the backend (docs/architecture.md), built in one
place.

Both ways of delivering a request use it: the direct forward (``upstream.Forwarder``) builds
it and sends it at once; spool delivery (``spool.py``) builds the very same bytes at
acceptance, stores them, and the deliverer sends them later, so a spooled request reaches
the backend exactly as a direct one would have. The rules:

* RFC 9110 §7.6.1: ``Connection``, every field it names, and the hop-by-hop fields
  (``Keep-Alive``, ``Proxy-Authenticate``, ``Proxy-Authorization``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``) are removed.
* ``X-Forwarded-For``/``-Proto``/``-Host`` (the de-facto form of RFC 7239's ``Forwarded``)
  and ``X-Request-Id`` are set by the gateway; caller copies (and ``Forwarded``) are dropped.
* RFC 6750 tokens never reach the backend unless the route says ``forward_authorization``;
  ``X-Gateway-Client-Id``/``X-Gateway-Scope`` come only from the verified token.
* W3C ``traceparent``/``tracestate``: the lines ``observe/trace.py`` chose (the caller's
  when valid, else a new trace).

The start line and ``Host`` are not part of the block: they depend on which upstream of the
route's failover list is tried (``upstream.py`` adds them per attempt).
"""

from __future__ import annotations

from functools import lru_cache

from multidict import CIMultiDictProxy

from gateway.config import RouteSettings

__all__ = ["HOP_BY_HOP", "connection_tokens", "request_fields"]

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
# Methods whose request carries a body by definition: "Content-Length: 0" when empty.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@lru_cache(maxsize=256)
def connection_tokens(value: str) -> frozenset[str]:
    """The field names a Connection header lists (RFC 9110 §7.6.1), lower-cased."""
    return frozenset(t for t in (p.strip().lower() for p in value.split(",")) if t)


def _dropped(headers: CIMultiDictProxy[str], base: frozenset[str]) -> frozenset[str]:
    if "Connection" not in headers:
        return base
    return base | connection_tokens(",".join(headers.getall("Connection")))


def request_fields(incoming: CIMultiDictProxy[str], method: str, body_length: int,
                   route: RouteSettings, *, client_id: str | None, scope: str | None,
                   request_id: str, forwarded_proto: str, client_address: str,
                   traceparent: str = "") -> bytes:
    """The header lines (each ending in CRLF, no blank line) to send the backend for a
    request that arrived with ``incoming`` headers and a body of ``body_length`` bytes."""
    drop = _dropped(incoming, _REQUEST_DROP_KEEP_AUTH if route.forward_authorization
                    else _REQUEST_DROP)
    head = [f"{k}: {v}\r\n" for k, v in incoming.items() if k.lower() not in drop]
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
