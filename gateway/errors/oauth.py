"""The OAuth errors (RFC 6749 §5.2, RFC 6750 §3.1), each quoting its RFC."""

from __future__ import annotations

from gateway.errors.base import GatewayError

__all__ = [
    "InsecureTransportError",
    "InsufficientScopeError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTokenError",
    "MissingTokenError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
]


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
    The JSON body still says ``invalid_token`` (every error has a body);
    the challenge carries only the realm.
    https://www.rfc-editor.org/rfc/rfc6750#section-3.1"""

    error = "invalid_token"
    status_code = 401
    description = "An access token is required."

    def __init__(self, description: str | None = None, *, realm: str = "gateway") -> None:
        super().__init__(description, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})


class InsecureTransportError(GatewayError):
    """Adobe's OAuth page: "All requests, including the ones used to obtain and use the tokens
    must use HTTPS endpoints"; RFC 6749 §3.1/§3.2 require TLS (docs/security.md)."""

    error = "invalid_request"
    status_code = 403
    description = "HTTPS is required"
