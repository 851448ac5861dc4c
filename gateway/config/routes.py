"""The ``routes`` section: path, methods, upstreams, scope, payload profile, signature,
timeouts and delivery mode of each protected route.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.config.model import (
    METHODS,
    RESERVED_PREFIXES,
    RouteSettings,
    SignatureSettings,
)
from gateway.config.yamlpath import Reader


def read_route(r: Reader, value: Any, path: str) -> RouteSettings:
    m = r.mapping(value, path, ("path", "methods", "upstream", "scope", "content_type",
                                "payload", "timeout_seconds", "forward_authorization",
                                "identity_headers", "success_status", "signature", "delivery",
                                "pass_headers"))
    route_path = r.string(m.get("path"), f"{path}.path")
    if route_path and not route_path.startswith("/"):
        r.fail(f"{path}.path", "must start with /")
    if route_path.startswith(RESERVED_PREFIXES):
        r.fail(f"{path}.path", "is reserved for the gateway's own endpoints")
    methods = tuple(m_.upper() for m_ in r.string_list(m.get("methods", ["POST"]),
                                                        f"{path}.methods", allow_scalar=True))
    for i, method in enumerate(methods):
        r.check(method in METHODS, f"{path}.methods[{i}]", "must be one of " + ", ".join(METHODS))
    r.check(bool(methods), f"{path}.methods", "must not be empty")
    upstream = m.get("upstream")
    upstream_items = [(f"{path}.upstream", upstream)] if not isinstance(upstream, list) else \
        r.items(upstream, f"{path}.upstream")
    upstreams = tuple(r.url(u, p) for p, u in upstream_items)
    r.check(bool(upstreams), f"{path}.upstream", "must not be empty")
    success = m.get("success_status", 200)
    signature = None
    if m.get("signature") is not None:
        sm = r.mapping(m["signature"], f"{path}.signature", ("header", "algorithm", "key"))
        signature = SignatureSettings(
            header=r.string(sm.get("header"), f"{path}.signature.header", default="X-Signature"),
            algorithm=r.string(sm.get("algorithm"), f"{path}.signature.algorithm",  # type: ignore[arg-type]
                               default="sha256", choices=("sha256", "sha1", "md5")),
            key=r.string(sm.get("key"), f"{path}.signature.key"),
        )
    delivery = r.string(m.get("delivery"), f"{path}.delivery", default="direct",
                        choices=("direct", "spool"))
    return RouteSettings(
        path=route_path,
        methods=methods,
        upstreams=upstreams,
        scope=r.optional_string(m.get("scope"), f"{path}.scope"),
        content_type=r.string(m.get("content_type"), f"{path}.content_type",
                              default="application/json").lower(),
        payload=r.string(m.get("payload"), f"{path}.payload", default="aam-segments",  # type: ignore[arg-type]
                         choices=("aam-segments", "none")),
        timeout_seconds=r.number(m.get("timeout_seconds"), f"{path}.timeout_seconds",
                                 default=10.0, positive=True, maximum=300),
        forward_authorization=r.boolean(m.get("forward_authorization"),
                                        f"{path}.forward_authorization", default=False),
        identity_headers=r.boolean(m.get("identity_headers"), f"{path}.identity_headers",
                                   default=True),
        success_status=None if success is None else r.integer(
            success, f"{path}.success_status", minimum=200, maximum=299),
        signature=signature,
        delivery=delivery,  # type: ignore[arg-type]
        pass_headers=_pass_headers(r, m.get("pass_headers"), f"{path}.pass_headers"),
    )


# RFC 9110 §5.1: field-name = token.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Set or removed by the gateway whatever a route says (docs/security.md).
_GATEWAY_FIELDS = frozenset({
    "host", "content-length", "content-encoding", "transfer-encoding", "connection",
    "keep-alive", "te", "trailer", "upgrade", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "expect", "forwarded", "x-forwarded-for", "x-forwarded-proto",
    "x-forwarded-host", "x-request-id", "x-gateway-client-id", "x-gateway-scope",
    "authorization",
})


def _pass_headers(r: Reader, value: Any, path: str) -> tuple[str, ...]:
    names = r.string_list(value, path)
    for i, name in enumerate(names):
        if not _FIELD_NAME.fullmatch(name):
            r.fail(f"{path}[{i}]", "must be a header field name")
        elif name.lower() == "authorization":
            r.fail(f"{path}[{i}]", "use forward_authorization: true instead")
        elif name.lower() in _GATEWAY_FIELDS:
            r.fail(f"{path}[{i}]", "is set or removed by the gateway itself")
    return tuple(dict.fromkeys(name.lower() for name in names))
