"""The ``routes`` section: path, methods, upstreams, scope, authentication, payload profile,
signature, timeouts and delivery mode of each protected route (docs/configuration.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.config.model import (
    BODY_BYTES_MAX,
    BODY_BYTES_MIN,
    DIRECT_TIMEOUT_SECONDS,
    IRIS_DEADLINE_SECONDS,
    METHODS,
    PAYLOAD_PROFILES,
    RESERVED_PREFIXES,
    SPOOL_TIMEOUT_SECONDS,
    PayloadSchema,
    RouteSettings,
    SignatureSettings,
)
from gateway.config.yamlpath import Reader

# The fallback's spool write needs some of IRIS's 3 s after the backend's share.
_MAX_SPOOL_AFTER_SECONDS = 2.5


def read_route(r: Reader, value: Any, path: str) -> RouteSettings:
    m = r.mapping(value, path, ("path", "methods", "upstream", "scope", "content_type", "auth",
                                "payload", "payload_mode", "timeout_seconds",
                                "forward_authorization", "identity_headers", "success_status",
                                "signature", "delivery", "spool_after_seconds", "pass_headers",
                                "max_body_bytes"))
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
        signature = _read_signature(r, m["signature"], f"{path}.signature")
    auth = r.string(m.get("auth"), f"{path}.auth", default="bearer",
                    choices=("bearer", "signature"))
    scope = r.optional_string(m.get("scope"), f"{path}.scope")
    if auth == "signature":
        r.check(signature is not None, f"{path}.signature", "is required with auth: signature")
        if scope is not None:
            r.warn(f"{path}.scope", "ignored with auth: signature (no bearer token is asked for)")
    delivery = r.string(m.get("delivery"), f"{path}.delivery", default="direct",
                        choices=("direct", "spool", "fallback"))
    timeout = r.number(m.get("timeout_seconds"), f"{path}.timeout_seconds",
                       default=DIRECT_TIMEOUT_SECONDS if delivery == "direct"
                       else SPOOL_TIMEOUT_SECONDS, positive=True, maximum=300)
    if delivery == "direct" and timeout >= IRIS_DEADLINE_SECONDS:
        r.warn(f"{path}.timeout_seconds",
               f"{timeout:g} s on a direct route: IRIS counts a push as failed after 3 s "
               "(use less than 3, or delivery: fallback or spool)")
    spool_after = 2.0
    if delivery == "fallback":
        spool_after = r.number(m.get("spool_after_seconds"), f"{path}.spool_after_seconds",
                               default=2.0, positive=True, maximum=_MAX_SPOOL_AFTER_SECONDS)
    else:
        r.check(m.get("spool_after_seconds") is None, f"{path}.spool_after_seconds",
                "applies to delivery: fallback only")
    payload, schema = _read_payload(r, m.get("payload"), f"{path}.payload")
    return RouteSettings(
        path=route_path,
        methods=methods,
        upstreams=upstreams,
        scope=scope,
        content_type=r.string(m.get("content_type"), f"{path}.content_type",
                              default="application/json").lower(),
        auth=auth,  # type: ignore[arg-type]
        payload=payload,  # type: ignore[arg-type]
        payload_schema=schema,
        payload_mode=r.string(m.get("payload_mode"), f"{path}.payload_mode",  # type: ignore[arg-type]
                              default="enforce", choices=("enforce", "report")),
        timeout_seconds=timeout,
        forward_authorization=r.boolean(m.get("forward_authorization"),
                                        f"{path}.forward_authorization", default=False),
        identity_headers=r.boolean(m.get("identity_headers"), f"{path}.identity_headers",
                                   default=True),
        success_status=None if success is None else r.integer(
            success, f"{path}.success_status", minimum=200, maximum=299),
        signature=signature,
        delivery=delivery,  # type: ignore[arg-type]
        spool_after_seconds=spool_after,
        pass_headers=_pass_headers(r, m.get("pass_headers"), f"{path}.pass_headers"),
        max_body_bytes=_read_body_limit(r, m.get("max_body_bytes"), f"{path}.max_body_bytes"),
    )


def _read_body_limit(r: Reader, value: Any, path: str) -> int | None:
    """A route's own body bound, within the bounds of ``server.max_body_bytes``; None
    (absent or null) leaves the route on the server's."""
    if value is None:
        return None
    return r.integer(value, path, minimum=BODY_BYTES_MIN, maximum=BODY_BYTES_MAX)


def _read_signature(r: Reader, value: Any, path: str) -> SignatureSettings:
    m = r.mapping(value, path, ("header", "algorithm", "keys", "key"))
    if "key" in m and "keys" in m:
        r.fail(path, "give keys (a list) or key (one), not both")
    if "keys" in m:
        keys = r.string_list(m["keys"], f"{path}.keys")
        r.check(bool(keys), f"{path}.keys", "must not be empty")
    else:  # the single key of older configurations
        keys = (r.string(m.get("key"), f"{path}.keys"),)
    return SignatureSettings(
        header=r.string(m.get("header"), f"{path}.header", default="X-Signature"),
        algorithm=r.string(m.get("algorithm"), f"{path}.algorithm",  # type: ignore[arg-type]
                           default="sha1", choices=("sha1", "sha256", "md5")),
        keys=keys,
    )


def _read_payload(r: Reader, value: Any, path: str) -> tuple[str, PayloadSchema | None]:
    if not isinstance(value, dict):
        return r.string(value, path, default="aam-segments", choices=PAYLOAD_PROFILES), None
    m = r.mapping(value, path, ("schema",))
    file = r.file(m.get("schema"), f"{path}.schema")
    if not file.is_file():
        return "schema", None  # the reader has recorded why
    try:
        text = file.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        r.fail(f"{path}.schema", f"not a JSON file: {exc.__class__.__name__}: {exc}")
        return "schema", None
    problem = _schema_problem(document)
    if problem is not None:
        r.fail(f"{path}.schema", f"not a valid JSON Schema: {problem}")
        return "schema", None
    return "schema", PayloadSchema(path=file, text=text)


def _schema_problem(document: Any) -> str | None:
    """Why ``document`` is not a usable schema (its draft's meta-schema, then compiling it
    offline: a ``$ref`` to another document is never fetched), or None."""
    import jsonschema_rs  # only configurations with a schema route pay for the import

    if not isinstance(document, dict | bool):
        return "must be a JSON object or boolean"
    try:
        if isinstance(document, dict):
            jsonschema_rs.meta.validate(document)
        jsonschema_rs.validator_for(document, offline=True)
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        return str(exc).splitlines()[0][:200]
    return None


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
