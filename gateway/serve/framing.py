"""Request framing the public listener refuses although aiohttp's parser takes it (RFC 9112
§3.2, §6.1; RFC 9110 §7.8; docs/security.md, "What the backend may trust").

aiohttp's parser (llhttp underneath) already refuses a ``Content-Length`` beside a
``Transfer-Encoding``, duplicated or malformed lengths, bare CR or LF line ends, obs-fold
and bad chunk sizes. Three shapes it lets through, which the gateway has no use for and a
front end may read otherwise, are refused here with ``400`` and a closed connection before
any stage runs (``guards.py`` calls ``misframed`` once per request):

* a ``Transfer-Encoding`` other than exactly ``chunked`` (``identity, chunked`` was taken
  and read as chunked; RFC 9112 §6.1 lets a server refuse a coding it does not
  understand, and a front end that ignores ``identity`` or stops at it frames the body
  differently);
* a request target that is not origin-form (``https://elsewhere.example/segments/aam``
  was routed by its path and forwarded, whatever its authority; IRIS sends origin-form, and
  a gateway that is no forward proxy answers for no other host);
* an ``Upgrade`` header (``websocket``, ``h2c``): the gateway never switches protocols;
  the header was dropped as hop-by-hop and the request forwarded, which hides from the
  log that someone tried an h2c upgrade through it.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.web_request import BaseRequest

from gateway.errors import InvalidRequestError, render

__all__ = ["misframed", "refuse_framing"]


def misframed(request: BaseRequest) -> str | None:
    """The ``reason`` a request's framing is refused for, or None when it may proceed."""
    headers = request.headers
    codings = headers.getall(hdrs.TRANSFER_ENCODING, ())
    if codings and (len(codings) > 1 or codings[0].strip().lower() != "chunked"):
        return "transfer_coding"
    if not request.raw_path.startswith("/"):
        return "request_target"
    if hdrs.UPGRADE in headers:
        return "upgrade"
    return None


async def refuse_framing(request: BaseRequest) -> web.StreamResponse:
    """The handler of a misframed request: ``400 invalid_request``, then the connection
    closes (the rest of what was sent is never read as another request)."""
    response = render(InvalidRequestError())
    response.headers["Connection"] = "close"
    response.force_close()
    return response
