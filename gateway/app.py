"""``create_app(settings)``: the public application and the admin application.

Middlewares, outermost first: errors (the one renderer of SPEC §6) → https (SPEC §5.4,
HSTS). Routes: the token endpoint and discovery (``oauth/``), then the protected routes
(``pipeline.py``). The admin application (``/healthz``) is served on its own listener,
never on the public port.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import keys
from gateway.errors import (
    GatewayError,
    InternalError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    render,
)
from gateway.oauth.routes import setup_oauth
from gateway.pipeline import add_protected_routes
from gateway.settings import Settings
from gateway.stages.https import add_hsts, https_middleware
from gateway.upstream import Forwarder

__all__ = ["create_admin_app", "create_app", "error_middleware"]

log = logging.getLogger("gateway")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into SPEC §6's JSON; never a stack trace on the wire."""
    try:
        return await handler(request)
    except GatewayError as error:
        return render(error)
    except web.HTTPMethodNotAllowed as exc:
        return render(MethodNotAllowedError(sorted(exc.allowed_methods)))
    except web.HTTPNotFound:
        return render(NotFoundError())
    except web.HTTPRequestEntityTooLarge:
        return render(PayloadTooLargeError())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        generic = GatewayError.__new__(GatewayError)
        GatewayError.__init__(generic, exc.reason if exc.reason.isascii() else None)
        response = render(generic)
        response.set_status(exc.status)
        return response
    except Exception:
        # reason_id: unhandled_exception — logged with its type only; the request's
        # headers may hold credentials and are never logged.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render(InternalError())


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            error_middleware,
            https_middleware(trusted_proxies=settings.server.trusted_proxies),
        ],
        client_max_size=settings.server.max_body_bytes,
        # auto_decompress off: gzip request bodies are inflated by the header stage under
        # the body bound (a gzip bomb must cost at most max_body_bytes), and the signature
        # stage needs the bytes as sent.
        handler_args={"max_field_size": 16384, "max_headers": 64, "auto_decompress": False,
                      "keepalive_timeout": 75.0},
    )
    app[keys.SETTINGS] = settings
    app.on_response_prepare.append(add_hsts)
    forwarder = Forwarder(settings.upstream_tls)
    app[keys.FORWARDER] = forwarder

    async def forwarder_ctx(_: web.Application) -> AsyncIterator[None]:
        await forwarder.start()
        yield
        await forwarder.close()

    app.cleanup_ctx.append(forwarder_ctx)
    setup_oauth(app, settings)
    add_protected_routes(app, settings)
    return app


def create_admin_app(settings: Settings) -> web.Application:
    """The operator's listener (SPEC §5.5): health now, readiness and metrics later."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[error_middleware])
    app[keys.SETTINGS] = settings
    app.router.add_get("/healthz", healthz)
    return app
