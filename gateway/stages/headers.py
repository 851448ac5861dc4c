"""Stage 5 of ``pipeline``: the header policy, and the body read under its bound.

``Content-Type`` must be the route's media type (parameters allowed, charset UTF-8) → 415;
a declared ``Content-Length`` over the route's bound (``routes[].max_body_bytes``, else
``server.max_body_bytes``) → 413 before one byte of the body is read; a chunked body is cut
off at the same bound; ``Content-Encoding: gzip`` bodies are inflated incrementally under the
same bound, so a gzip bomb costs at most that much memory; any other encoding → 415.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import hdrs, web

from gateway import keys
from gateway.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from gateway.mediatype import charset_is_utf8, parse_media_type

__all__ = ["check_content_headers", "inflate_gzip", "read_body"]

_IDENTITY = ("", "identity")


def check_content_headers(request: web.Request, media_type: str, max_bytes: int) -> bool:
    """Whether the body is gzip; ``UnsupportedMediaTypeError`` (415) for another media
    type, charset or encoding, ``PayloadTooLargeError`` (413) for a declared length over
    ``max_bytes``."""
    headers = request.headers
    content_types = headers.getall(hdrs.CONTENT_TYPE, ())
    parsed = parse_media_type(content_types[0]) if len(content_types) == 1 else None
    if parsed is None or parsed[0] != media_type or not charset_is_utf8(parsed[1]):
        raise UnsupportedMediaTypeError(f"Content-Type must be {media_type} (UTF-8).")
    encoding = headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    gzip = encoding in ("gzip", "x-gzip")
    if not gzip and encoding not in _IDENTITY:
        raise UnsupportedMediaTypeError("Content-Encoding must be gzip or absent.")
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLargeError()
    return gzip


async def read_body(request: web.Request, max_bytes: int, *, gzip: bool) -> tuple[bytes, bytes]:
    """``(raw, body)``: the bytes as sent, and the same inflated when gzip-encoded."""
    if request.content_length is None and not request.body_exists:
        return b"", b""
    # RFC 9110 §10.1.1: a client that sent Expect: 100-continue waits for this before the
    # body. Sent here, after the token, the client's limits and the headers passed.
    if hdrs.EXPECT in request.headers:  # the usual request has none: one C lookup
        send_continue = request.pop(keys.CONTINUE, None)
        if send_continue is not None:
            await send_continue()
    length = request.content_length
    if length is not None:
        # The declared length was checked against the route's bound already. Read from the
        # stream, not with request.read(), whose own bound is the app's (client_max_size,
        # the server's): a route may allow more than the server (routes[].max_body_bytes).
        try:
            raw = await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise InvalidRequestError("The request body is shorter than its length.") from None
    else:
        # A chunked body arrives in as many reads as the network makes of it (read(n)
        # returns what is buffered, not n bytes): read to the end or one byte past the
        # bound, so that "exactly at the bound" and "over it" can be told apart.
        buffer = bytearray()
        while chunk := await request.content.read(max_bytes + 1 - len(buffer)):
            buffer += chunk
            if len(buffer) > max_bytes:
                break
        raw = bytes(buffer)
    if len(raw) > max_bytes:
        raise PayloadTooLargeError()
    return raw, inflate_gzip(raw, max_bytes) if gzip else raw


def inflate_gzip(raw: bytes, max_bytes: int) -> bytes:
    """Inflate one gzip member, never producing more than ``max_bytes``."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error:
        raise InvalidRequestError("The gzip body is corrupt.") from None
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLargeError("The request body inflates past the size limit.")
    if not inflater.eof or inflater.unused_data:
        raise InvalidRequestError("The gzip body is truncated or has trailing data.")
    return body
