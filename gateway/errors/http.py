"""The HTTP errors that have no OAuth code: a short code of their own (``not_found``,
``payload_too_large``, ``bad_gateway``, ...)."""

from __future__ import annotations

from gateway.errors.base import GatewayError

__all__ = [
    "BadGatewayError",
    "ClientClosedRequestError",
    "ForbiddenError",
    "GatewayTimeoutError",
    "HttpVersionNotSupportedError",
    "InternalError",
    "InvalidPayloadError",
    "MethodNotAllowedError",
    "MisdirectedRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestHeaderFieldsTooLargeError",
    "RequestTimeoutError",
    "ServiceUnavailableError",
    "UnsupportedMediaTypeError",
    "UriTooLongError",
]


class NotFoundError(GatewayError):
    """No route or endpoint. The body names no ``error``: an OAuth client reads an
    ``error`` member as the authorization server's answer (openid-client's discovery of
    ``/.well-known/openid-configuration`` would report an OAuth error "not_found"), while
    a 404 only says that nothing is here. ``error`` stays the code in metrics and logs."""

    error = "not_found"
    status_code = 404
    body_names_error = False
    description = ("No route matches this path. This server's OAuth metadata (RFC 8414) is "
                   "at /.well-known/oauth-authorization-server; it has no OpenID Connect "
                   "discovery.")


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


class HttpVersionNotSupportedError(GatewayError):
    """RFC 9110 §15.6.6: 505, for a request line of a version other than HTTP/1.0 or 1.1."""

    error = "invalid_request"
    status_code = 505
    description = "Only HTTP/1.1 and HTTP/1.0 are served."


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


class ClientClosedRequestError(GatewayError):
    """499, nginx's "client closed request": the caller went away (FIN or RST) before its
    request was read in full. No one reads this answer; the status is for the access log
    and the metrics, where it is neither a 4xx the gateway chose nor a 5xx it caused."""

    error = "client_closed_request"
    status_code = 499
    description = "The client closed the connection before its request was read."


class MisdirectedRequestError(GatewayError):
    """RFC 9110 §15.5.20: 421, the request was directed at a server that will not answer
    for its target: the admin listener under a ``Host`` that does not name it (a
    DNS-rebinding page's own name)."""

    error = "misdirected_request"
    status_code = 421
    description = "This listener does not answer for that Host."
