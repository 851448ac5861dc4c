"""The one error hierarchy of the gateway and its single renderer.

Every stage raises exactly one of these; ``render`` turns it into the JSON error body
(``{"error": ..., "error_description": ...}``, docs/architecture.md) with the headers
RFC 6749 §5.2 and RFC 6750 §3 require. Nothing else in the gateway writes an error response.

    GatewayError
    ├── OAuth errors (RFC 6749 §5.2, RFC 6750 §3.1)
    │   InvalidRequestError, InvalidClientError, InvalidGrantError,
    │   UnauthorizedClientError, UnsupportedGrantTypeError, InvalidScopeError,
    │   InvalidTokenError, InsufficientScopeError, InsecureTransportError
    └── HTTP errors (docs/architecture.md short codes)
        NotFoundError, MethodNotAllowedError, UnsupportedMediaTypeError,
        PayloadTooLargeError, InvalidPayloadError, ForbiddenError, RateLimitedError,
        ServiceUnavailableError, BadGatewayError, GatewayTimeoutError, InternalError,
        RequestTimeoutError, UriTooLongError, RequestHeaderFieldsTooLargeError,
        HttpVersionNotSupportedError, ClientClosedRequestError, MisdirectedRequestError

Modules:

* ``base``: ``GatewayError``, its code, status and checked description.
* ``oauth``: the RFC 6749 and RFC 6750 codes.
* ``http``: the short codes of errors that have no OAuth code.
* ``render``: the single renderer, and the error middleware.
"""

from gateway.errors.base import NO_STORE_HEADERS, GatewayError
from gateway.errors.http import (
    BadGatewayError,
    ClientClosedRequestError,
    ForbiddenError,
    GatewayTimeoutError,
    HttpVersionNotSupportedError,
    InternalError,
    InvalidPayloadError,
    MethodNotAllowedError,
    MisdirectedRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestHeaderFieldsTooLargeError,
    RequestTimeoutError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    UriTooLongError,
)
from gateway.errors.oauth import (
    InsecureTransportError,
    InsufficientScopeError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTokenError,
    MissingTokenError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from gateway.errors.render import error_body, error_middleware, render, respond_to

__all__ = [
    "NO_STORE_HEADERS",
    "BadGatewayError",
    "ClientClosedRequestError",
    "ForbiddenError",
    "GatewayError",
    "GatewayTimeoutError",
    "HttpVersionNotSupportedError",
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
    "MisdirectedRequestError",
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
    "error_body",
    "error_middleware",
    "render",
    "respond_to",
]
