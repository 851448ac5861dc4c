"""The one error hierarchy of the gateway and its single renderer.

Every stage raises exactly one of these; ``render`` turns it into the JSON body of
SPEC §6 (``{"error": ..., "error_description": ...}``) with the headers RFC 6749 §5.2 and
RFC 6750 §3 require. Nothing else in the gateway writes an error response.

    GatewayError
    ├── OAuth errors (RFC 6749 §5.2, RFC 6750 §3.1)
    │   InvalidRequestError, InvalidClientError, InvalidGrantError,
    │   UnauthorizedClientError, UnsupportedGrantTypeError, InvalidScopeError,
    │   InvalidTokenError, InsufficientScopeError, InsecureTransportError
    └── HTTP errors (SPEC §6 short codes)
        NotFoundError, MethodNotAllowedError, UnsupportedMediaTypeError,
        PayloadTooLargeError, InvalidPayloadError, ForbiddenError, RateLimitedError,
        ServiceUnavailableError, BadGatewayError, GatewayTimeoutError, InternalError,
        RequestTimeoutError, UriTooLongError, RequestHeaderFieldsTooLargeError
"""

from __future__ import annotations

import json
import logging
import re
from typing import ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "BadGatewayError",
    "ForbiddenError",
    "GatewayError",
    "GatewayTimeoutError",
    "InsecureTransportError",
    "InsufficientScopeError",
    "InternalError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidPayloadError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTokenError",
    "MethodNotAllowedError",
    "MissingTokenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestHeaderFieldsTooLargeError",
    "RequestTimeoutError",
    "ServiceUnavailableError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedMediaTypeError",
    "UriTooLongError",
    "error_middleware",
    "render",
    "respond_to",
]

log = logging.getLogger("gateway")

# RFC 6749 §5.2: error_description "MUST NOT include characters outside the set
# %x20-21 / %x23-5B / %x5D-7E" (printable ASCII without '"' and '\').
_DESCRIPTION_CHARS = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]*$")

NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class GatewayError(Exception):
    """Base of every error the gateway answers with; never raised itself."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 500
    description: ClassVar[str] = "The gateway could not handle the request."

    def __init__(
        self,
        description: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        text = description if description is not None else self.description
        if not _DESCRIPTION_CHARS.match(text):
            # SECURITY: a description holding quotes or backslashes could break out of
            # WWW-Authenticate; such text is a bug in the caller, never sent as it is.
            text = type(self).description
        super().__init__(text)
        self.text = text
        self.extra_headers = dict(headers or {})

    def headers(self) -> dict[str, str]:
        return dict(self.extra_headers)


class InvalidRequestError(GatewayError):
    """RFC 6749 §5.2 / RFC 6750 §3.1 ``invalid_request``: "The request is missing a
    required parameter, includes an unsupported parameter value (other than grant
    type), repeats a parameter, ... or is otherwise malformed."
    https://www.rfc-editor.org/rfc/rfc6749#section-5.2"""

    error = "invalid_request"
    status_code = 400
    description = "The request is malformed."


class InvalidClientError(GatewayError):
    """RFC 6749 §5.2 ``invalid_client``: "Client authentication failed ... The authorization
    server MAY return an HTTP 401 ... If the client attempted to authenticate via the
    'Authorization' request header field, the authorization server MUST respond with an
    HTTP 401 (Unauthorized) status code and include the WWW-Authenticate response header."
    https://www.rfc-editor.org/rfc/rfc6749#section-5.2"""

    error = "invalid_client"
    status_code = 401
    description = "Client authentication failed."

    def __init__(self, description: str | None = None, *, realm: str = "gateway") -> None:
        super().__init__(description, headers={"WWW-Authenticate": f'Basic realm="{realm}"'})


class InvalidGrantError(GatewayError):
    """RFC 6749 §5.2 ``invalid_grant``.
    https://www.rfc-editor.org/rfc/rfc6749#section-5.2"""

    error = "invalid_grant"
    status_code = 400
    description = "The grant is invalid."


class UnauthorizedClientError(GatewayError):
    """RFC 6749 §5.2 ``unauthorized_client``: "The authenticated client is not authorized
    to use this authorization grant type."
    https://www.rfc-editor.org/rfc/rfc6749#section-5.2"""

    error = "unauthorized_client"
    status_code = 400
    description = "The client may not use this grant type."


class UnsupportedGrantTypeError(GatewayError):
    """RFC 6749 §5.2 ``unsupported_grant_type``: "The authorization grant type is not
    supported by the authorization server."
    https://www.rfc-editor.org/rfc/rfc6749#section-5.2"""

    error = "unsupported_grant_type"
    status_code = 400
    description = "Only grant_type=client_credentials is supported."


class InvalidScopeError(GatewayError):
    """RFC 6749 §5.2 ``invalid_scope``: "The requested scope is invalid, unknown,
    malformed, or exceeds the scope granted by the resource owner."
    https://www.rfc-editor.org/rfc/rfc6749#section-5.2"""

    error = "invalid_scope"
    status_code = 400
    description = "The requested scope is not allowed for this client."


class _BearerError(GatewayError):
    """RFC 6750 §3: every 401/403 of a protected resource carries
    ``WWW-Authenticate: Bearer realm="...", error="..."``.
    https://www.rfc-editor.org/rfc/rfc6750#section-3"""

    def __init__(
        self,
        description: str | None = None,
        *,
        realm: str = "gateway",
        scope: str | None = None,
    ) -> None:
        super().__init__(description)
        challenge = f'Bearer realm="{realm}", error="{self.error}"'
        if scope:
            challenge += f', scope="{scope}"'
        self.extra_headers["WWW-Authenticate"] = challenge


class InvalidTokenError(_BearerError):
    """RFC 6750 §3.1 ``invalid_token``: "The access token provided is expired, revoked,
    malformed, or invalid for other reasons. The resource SHOULD respond with the HTTP
    401 (Unauthorized) status code."
    https://www.rfc-editor.org/rfc/rfc6750#section-3.1"""

    error = "invalid_token"
    status_code = 401
    description = "The access token is invalid."


class InsufficientScopeError(_BearerError):
    """RFC 6750 §3.1 ``insufficient_scope``: "The request requires higher privileges than
    provided by the access token. The resource server SHOULD respond with the HTTP 403
    (Forbidden) status code."
    https://www.rfc-editor.org/rfc/rfc6750#section-3.1"""

    error = "insufficient_scope"
    status_code = 403
    description = "The access token lacks the scope this route requires."


class MissingTokenError(GatewayError):
    """RFC 6750 §3.1: "If the request lacks any authentication information ..., the
    resource server SHOULD NOT include an error code or other error information."
    The JSON body still says ``invalid_token`` (SPEC §6 wants a body on every error);
    the challenge carries only the realm.
    https://www.rfc-editor.org/rfc/rfc6750#section-3.1"""

    error = "invalid_token"
    status_code = 401
    description = "An access token is required."

    def __init__(self, description: str | None = None, *, realm: str = "gateway") -> None:
        super().__init__(description, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})


class InsecureTransportError(GatewayError):
    """SPEC §5.4 and the seed: "All requests, including the ones used to obtain and use
    the tokens must use HTTPS endpoints"; RFC 6749 §3.1/§3.2 require TLS."""

    error = "invalid_request"
    status_code = 403
    description = "HTTPS is required"


class NotFoundError(GatewayError):
    error = "not_found"
    status_code = 404
    description = "No route matches this path."


class MethodNotAllowedError(GatewayError):
    """RFC 9110 §15.5.6: a 405 "MUST generate an Allow header field"."""

    error = "method_not_allowed"
    status_code = 405
    description = "This method is not allowed on this path."

    def __init__(self, allowed: list[str] | tuple[str, ...] | set[str]) -> None:
        super().__init__(headers={"Allow": ", ".join(sorted(allowed))})


class UnsupportedMediaTypeError(GatewayError):
    error = "unsupported_media_type"
    status_code = 415
    description = "The request's Content-Type or Content-Encoding is not accepted here."


class PayloadTooLargeError(GatewayError):
    error = "payload_too_large"
    status_code = 413
    description = "The request body is larger than this gateway accepts."


class RequestHeaderFieldsTooLargeError(GatewayError):
    error = "invalid_request"
    status_code = 431
    description = "The request headers are too large."


class RequestTimeoutError(GatewayError):
    """RFC 9110 §15.5.9: 408, the request did not arrive in the time the server waits."""

    error = "request_timeout"
    status_code = 408
    description = "The request did not arrive in time."


class UriTooLongError(GatewayError):
    error = "invalid_request"
    status_code = 414
    description = "The request target is too long."


class InvalidPayloadError(GatewayError):
    error = "invalid_payload"
    status_code = 400
    description = "The payload is not a valid aam-segments document."


class ForbiddenError(GatewayError):
    error = "forbidden"
    status_code = 403
    description = "This client may not call from this address."


class RateLimitedError(GatewayError):
    """RFC 6585 §4: 429 Too Many Requests, with ``Retry-After`` in seconds."""

    error = "rate_limited"
    status_code = 429
    description = "Too many requests; retry later."

    def __init__(self, retry_after: float, description: str | None = None) -> None:
        seconds = max(1, int(retry_after + 0.999))  # RFC 9110 §10.2.3: whole seconds
        super().__init__(description, headers={"Retry-After": str(seconds)})


class ServiceUnavailableError(GatewayError):
    error = "service_unavailable"
    status_code = 503
    description = "The gateway cannot accept this request now; retry later."


class BadGatewayError(GatewayError):
    error = "bad_gateway"
    status_code = 502
    description = "The backend could not be reached or gave an invalid answer."


class GatewayTimeoutError(GatewayError):
    error = "gateway_timeout"
    status_code = 504
    description = "The backend did not answer in time."


class InternalError(GatewayError):
    error = "server_error"
    status_code = 500
    description = "The gateway could not handle the request."


def error_body(error: GatewayError) -> bytes:
    return json.dumps(
        {"error": error.error, "error_description": error.text}, separators=(",", ":")
    ).encode()


def render(error: GatewayError) -> web.Response:
    """The one place an error becomes an HTTP answer (SPEC §6)."""
    headers = {**NO_STORE_HEADERS, **error.headers()}
    return web.Response(
        status=error.status_code,
        body=error_body(error),
        content_type="application/json",
        headers=headers,
    )


def respond_to(request: web.Request, exc: Exception) -> web.Response:
    """The SPEC §6 answer to whatever a handler raised; never a stack trace on the wire."""
    if isinstance(exc, GatewayError):
        return render(exc)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return render(MethodNotAllowedError(sorted(exc.allowed_methods)))
    if isinstance(exc, web.HTTPNotFound):
        return render(NotFoundError())
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return render(PayloadTooLargeError())
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        generic = GatewayError.__new__(GatewayError)
        GatewayError.__init__(generic, exc.reason if exc.reason.isascii() else None)
        response = render(generic)
        response.set_status(exc.status)
        return response
    # reason_id: unhandled_exception — logged with its type only; the request's headers
    # may hold credentials and are never logged.
    log.error("unhandled error on %s %s", request.method, request.path,
              exc_info=(type(exc), exc, exc.__traceback__),
              extra={"reason_id": "unhandled_exception"})
    return render(InternalError())


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into SPEC §6's JSON (the admin app; the public app's front
    middleware in app.py does the same and counts refusals)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return respond_to(request, exc)
    except Exception as exc:
        return respond_to(request, exc)
