"""Stage 5, ``check_content_headers`` then ``read_body``: the media type (415), the declared
size before any byte is read (413), gzip inflated under the same bound (413, 400)."""

from __future__ import annotations

import gzip

import pytest

from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from gateway.stages.headers import check_content_headers, read_body

from stage_harness import mocked

JSON = "application/json"
BOUND = 64


def headers(content_type: str | None = JSON, *, length: int | None = None,
            encoding: str | None = None) -> list[tuple[str, str]]:
    found = [] if content_type is None else [("Content-Type", content_type)]
    if length is not None:
        found.append(("Content-Length", str(length)))
    if encoding is not None:
        found.append(("Content-Encoding", encoding))
    return found


@pytest.mark.parametrize(("given", "is_gzip"), [
    (headers(), False),
    (headers("application/json; charset=UTF-8", length=BOUND), False),
    (headers("Application/JSON ; charset=utf-8"), False),
    (headers(encoding="gzip"), True),
    (headers(encoding="x-gzip"), True),
    (headers(encoding="identity"), False),
])
async def test_accepted_headers_say_whether_the_body_is_gzip(given: list[tuple[str, str]],
                                                             is_gzip: bool) -> None:
    assert check_content_headers(mocked(headers=given), JSON, BOUND) is is_gzip


@pytest.mark.parametrize(("given", "error", "status", "code"), [
    (headers(None), UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (headers("text/plain"), UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (headers("application/json; charset=latin-1"), UnsupportedMediaTypeError, 415,
     "unsupported_media_type"),
    (headers() + headers(), UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (headers(encoding="br"), UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (headers(length=BOUND + 1), PayloadTooLargeError, 413, "payload_too_large"),
], ids=["no-type", "other-type", "other-charset", "type-twice", "brotli", "too-long"])
async def test_refused_headers(given: list[tuple[str, str]], error: type[GatewayError],
                               status: int, code: str) -> None:
    with pytest.raises(error) as caught:
        check_content_headers(mocked(headers=given), JSON, BOUND)
    assert (caught.value.status_code, caught.value.error) == (status, code)


async def test_the_body_is_read_as_sent_and_inflated() -> None:
    body = b'{"Users": []}'
    packed = gzip.compress(body)
    request = mocked(headers=headers(length=len(packed), encoding="gzip"), body=packed)
    assert await read_body(request, BOUND, gzip=True) == (packed, body)
    plain = mocked(headers=headers(length=len(body)), body=body)
    assert await read_body(plain, BOUND, gzip=False) == (body, body)


async def test_a_chunked_body_past_the_bound_is_413() -> None:
    request = mocked(headers=[*headers(), ("Transfer-Encoding", "chunked")],
                     body=b"x" * (BOUND + 1))
    with pytest.raises(PayloadTooLargeError):
        await read_body(request, BOUND, gzip=False)
    at_bound = mocked(headers=[*headers(), ("Transfer-Encoding", "chunked")],
                      body=b"x" * BOUND)
    assert await read_body(at_bound, BOUND, gzip=False) == (b"x" * BOUND, b"x" * BOUND)


@pytest.mark.parametrize(("raw", "error", "status"), [
    (gzip.compress(b"0" * (BOUND + 1)), PayloadTooLargeError, 413),
    (b"not gzip at all", InvalidRequestError, 400),
    (gzip.compress(b"{}")[:-4], InvalidRequestError, 400),
    (gzip.compress(b"{}") + b"tail", InvalidRequestError, 400),
], ids=["inflates-past-the-bound", "corrupt", "truncated", "trailing-data"])
async def test_bad_gzip_bodies(raw: bytes, error: type[GatewayError], status: int) -> None:
    request = mocked(headers=headers(length=len(raw), encoding="gzip"), body=raw)
    with pytest.raises(error) as caught:
        await read_body(request, BOUND, gzip=True)
    assert caught.value.status_code == status
