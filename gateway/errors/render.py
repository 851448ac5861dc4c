"""The single renderer: the only place an error becomes an HTTP answer."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors.base import NO_STORE_HEADERS, GatewayError
from gateway.errors.http import (
    InternalError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
)

__all__ = ["error_body", "error_middleware", "render", "respond_to"]

log = logging.getLogger("gateway")


def error_body(error: GatewayError) -> bytes:
    if not error.body_names_error:
        return json.dumps({"error_description": error.text}, separators=(",", ":")).encode()
    return json.dumps(
        {"error": error.error, "error_description": error.text}, separators=(",", ":")
    ).encode()


def render(error: GatewayError) -> web.Response:
    """The one place an error becomes an HTTP answer (docs/architecture.md)."""
    headers = {**NO_STORE_HEADERS, **error.headers()}
    return web.Response(
        status=error.status_code,
        body=error_body(error),
        content_type="application/json",
        headers=headers,
    )


def respond_to(request: web.Request, exc: Exception) -> web.Response:
    """The JSON error answer to whatever a handler raised; never a stack trace on the wire.
    The one catch-all of both apps' middlewares: an ``HTTPException`` below 400 (a
    redirect) is no failure and is raised again for aiohttp to send."""
    if isinstance(exc, GatewayError):
        return render(exc)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return render(MethodNotAllowedError(sorted(exc.allowed_methods)))
    if isinstance(exc, web.HTTPNotFound):
        return render(NotFoundError())
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return render(PayloadTooLargeError())
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
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
    """Turn every failure into the JSON error body (the admin app; the public app's front
    middleware in app.py does the same and counts refusals)."""
    try:
        return await handler(request)
    except Exception as exc:
        return respond_to(request, exc)
