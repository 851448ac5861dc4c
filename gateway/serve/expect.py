"""``Expect: 100-continue`` answered only once the request has earned its body (RFC 9110
§10.1.1; docs/security.md).

aiohttp's default expect handler writes ``100 Continue`` as soon as a route matches, before
any middleware or check has run, which invites anyone to upload a body that the gateway is
about to refuse. ``defer_continue`` is the expect handler of every public route instead: it
refuses an unknown expectation (``417``, as aiohttp does), and otherwise leaves a callable
under ``keys.CONTINUE``. The code that reads the body (``stages/headers.py`` on the
protected routes, ``oauth/token_endpoint.py`` on the OAuth endpoints) pops and awaits it
first, so the interim answer follows every check that needs no body: the bearer token and
the client's limits on a route, the failed-authentication limit and a Basic credential at
the token endpoint. A request refused before that gets its refusal at once, and since its
body may or may not follow, the connection then closes (``guards.py``,
``finish_response``).
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.web_request import BaseRequest

from gateway import keys

__all__ = ["continue_withheld", "defer_continue"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def defer_continue(request: web.Request) -> None:
    """The routes' expect handler: 417 for anything but 100-continue, else deferred."""
    if request.version != HttpVersion11:
        return  # RFC 9110 §10.1.1: an HTTP/1.0 client is never sent 100 (as aiohttp)
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        raise web.HTTPExpectationFailed()

    async def send() -> None:
        await request.writer.write(_CONTINUE)
        # The interim answer is not the answer: as aiohttp's own handler does, so that an
        # error raised while reading the body can still be written.
        request.writer.output_size = 0

    request[keys.CONTINUE] = send


def continue_withheld(request: BaseRequest) -> bool:
    """Whether the caller still waits for 100 Continue and its body was never asked for."""
    # The header first: a C lookup, where the request's own mapping raises KeyError inside.
    return (hdrs.EXPECT in request.headers and keys.CONTINUE in request
            and not request.content.is_eof())
