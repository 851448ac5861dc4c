"""Property-based fuzzing of the running gateway over real TLS (hypothesis).

Each example is one raw HTTP/1.1 request on a new TLS connection to the real gateway in front
of the real sample backend, so header bytes no client library would send (control characters,
invalid UTF-8, odd spacing) reach the server. The properties, for every example:

* the status is one the gateway documents, never 500, and every error has the JSON body of
docs/architecture.md
  (``{"error", "error_description"}``), never a traceback;
* 2xx only when an independent oracle in this file says the request was valid;
* the backend is called exactly when the gateway answered 2xx (its ``/_stats`` counter).

Examples are derandomized and the database is off, so CI sees the same inputs on every run.
"""

from __future__ import annotations

import base64
import gzip
import json
import ssl
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.serve.server import RunningGateway

from adv_harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    DOCUMENTED_STATUSES,
    SEED_CREDENTIAL,
    SEED_PAYLOAD,
    RawAnswer,
    assert_error_body,
    backend_count,
    basic,
    raw_exchange,
)

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# Header bytes: anything but CR and LF (those would end the field and are fuzzed apart).
header_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
header_text = st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")
                                       .replace(b"\r", b"").replace(b"\n", b""))
header_value = st.one_of(header_bytes, header_text)
header_name = st.sampled_from([
    b"X-Fuzz", b"Accept-Encoding", b"Accept", b"User-Agent", b"X-Forwarded-For",
    b"X-Forwarded-Proto", b"X-Gateway-Client-Id", b"X-Gateway-Scope", b"Forwarded", b"Expect",
    b"Connection", b"Keep-Alive", b"TE", b"Upgrade", b"X-Request-Id", b"Cookie", b"Origin",
    b"Content-Language", b"Range", b"If-None-Match", b"X-Signature",
])
extra_headers = st.lists(st.tuples(header_name, header_value), max_size=4)


def request(method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
            body: bytes) -> bytes:
    head = [method + b" " + path + b" HTTP/1.1", b"Host: localhost"]
    head += [name + b": " + value for name, value in headers]
    head.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def exchange(gateway: RunningGateway, context: ssl.SSLContext, raw: bytes) -> RawAnswer:
    answers = await raw_exchange(gateway.ports["https"], context, raw)
    assert answers and answers[0].status != 0, "the gateway closed without an answer"
    answer = answers[0]
    assert answer.status in DOCUMENTED_STATUSES, (answer.status, answer.body[:300])
    if answer.status >= 400:
        assert_error_body(answer)
        assert answer.headers.get("content-type", "").startswith("application/json")
    return answer


# -- the token endpoint -----------------------------------------------------------------------

VALID_BASIC = {basic(CLIENT_ID, CLIENT_SECRET).encode(), b"Basic " + SEED_CREDENTIAL.encode()}


def _b64_pair(pair: tuple[str, str]) -> bytes:
    return b"Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode())


authorization = st.one_of(
    st.sampled_from(sorted(VALID_BASIC)),
    st.builds(lambda v: b"Basic " + v, header_value),
    st.tuples(st.sampled_from([CLIENT_ID, "reader", "", "aam ", "AAM"]),
              st.sampled_from([CLIENT_SECRET, CLIENT_SECRET + "x", "", "%"])).map(_b64_pair),
    st.sampled_from([b"Bearer abc", b"basic", b"Basic", b"Basic  ", b"Digest x",
                     b"Basic " + SEED_CREDENTIAL.encode() + b" x",
                     b"Basic " + SEED_CREDENTIAL.encode()[:-1]]),
    header_value,
)
form_content_type = st.one_of(
    st.sampled_from([b"application/x-www-form-urlencoded",
                     b"application/x-www-form-urlencoded;charset=UTF-8",
                     b"application/x-www-form-urlencoded ; charset=UTF-8",
                     b"Application/X-WWW-Form-Urlencoded; Charset=\"utf-8\"",
                     b"application/x-www-form-urlencoded; charset=latin-1",
                     b"application/json", b"multipart/form-data; boundary=x", b"",
                     b"application/x-www-form-urlencoded; charset", b";;;", b"*/*"]),
    header_value,
)
form_body = st.one_of(
    st.sampled_from([b"grant_type=client_credentials", b"grant_type=client_credentials&scope="
                     b"segments%3Awrite", b"grant_type=password", b"grant_type=client_credentials"
                     b"&grant_type=client_credentials", b"", b"grant_type", b"=",
                     b"grant_type=client_credentials&scope=admin", b"grant_type=%ff",
                     b"grant_type=client_credentials&client_id=reader"]),
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["grant_type", "scope", "client_id", "client_secret", "x"]),
                    st.text(max_size=30), max_size=4).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(auth=st.one_of(st.none(), authorization), content_type=st.one_of(st.none(),
       form_content_type), body=form_body, extra=extra_headers,
       method=st.sampled_from([b"POST", b"POST", b"POST", b"GET", b"PUT", b"OPTIONS"]))
async def test_fuzz_token_endpoint(adv_gateway: RunningGateway, client_ssl_ctx: ssl.SSLContext,
                                   auth: bytes | None, content_type: bytes | None, body: bytes,
                                   extra: list[tuple[bytes, bytes]], method: bytes) -> None:
    headers = list(extra)
    if auth is not None:
        headers.append((b"Authorization", auth))
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    answer = await exchange(adv_gateway, client_ssl_ctx,
                            request(method, b"/oauth2/token", headers, body))
    if 200 <= answer.status < 300:
        # Oracle: only a configured credential, sent once, buys a token.
        assert auth is not None and auth.strip(b" \t") in VALID_BASIC, auth
        assert method == b"POST" and b"grant_type=client_credentials" in body
        document = (json.loads(gzip.decompress(answer.body))
                    if answer.headers.get("content-encoding") == "gzip" else answer.json())
        assert document["token_type"] == "Bearer" and document["access_token"]
        assert answer.headers["cache-control"] == "no-store"


# -- the Authorization header of a protected route --------------------------------------------

def _mutations(token: str) -> st.SearchStrategy[bytes]:
    raw = token.encode()
    index = st.integers(min_value=0, max_value=len(raw) - 1)
    return st.one_of(
        st.just(b"Bearer " + raw),
        st.sampled_from([b"bearer ", b"BEARER ", b"Bearer  ", b"Bearer\t", b"Basic ",
                         b"Bearer", b"", b" Bearer "]).map(lambda s: s + raw),
        st.tuples(index, st.binary(min_size=1, max_size=3)).map(
            lambda m: b"Bearer " + raw[:m[0]] + m[1] + raw[m[0] + 1:]),
        index.map(lambda i: b"Bearer " + raw[:i]),
        st.tuples(index, st.binary(min_size=1, max_size=8)).map(
            lambda m: b"Bearer " + raw[:m[0]] + m[1] + raw[m[0]:]),
        st.builds(lambda v: b"Bearer " + v, header_value),
        st.just(b"Bearer " + b".".join(reversed(raw.split(b".")))),
        st.just(b"Bearer " + raw + b"," + raw),
        header_value,
    )


def _same_token(presented: bytes, token: str) -> bool:
    """Oracle: ``presented`` is the Authorization value of ``token`` itself (scheme case and
    spacing aside; a signature whose base64url differs only in unused bits is the same)."""
    scheme, _, rest = presented.strip(b" \t").partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    parts, real = rest.strip(b" \t").split(b"."), token.encode().split(b".")
    if len(parts) != 3 or parts[:2] != real[:2]:
        return False
    try:
        signature = base64.urlsafe_b64decode(parts[2] + b"=" * (-len(parts[2]) % 4))
    except ValueError:
        return False
    return signature == base64.urlsafe_b64decode(real[2] + b"=" * (-len(real[2]) % 4))


@pytest.fixture
async def stats_session() -> Any:
    async with aiohttp.ClientSession() as client:
        yield client


@FUZZ
@given(data=st.data(), extra=extra_headers)
async def test_fuzz_authorization_header(adv_gateway: RunningGateway, token: str,
                                         backend: tuple[str, Any],
                                         client_ssl_ctx: ssl.SSLContext, data: st.DataObject,
                                         extra: list[tuple[bytes, bytes]]) -> None:
    presented = data.draw(_mutations(token))
    headers = [(b"Authorization", presented), (b"Content-Type", b"application/json"), *extra]
    before = await backend_count(backend[0])
    answer = await exchange(adv_gateway, client_ssl_ctx,
                            request(b"POST", b"/segments/aam", headers, SEED_PAYLOAD))
    called = await backend_count(backend[0]) - before
    assert called == (1 if 200 <= answer.status < 300 else 0), answer
    if called:
        assert _same_token(presented, token), presented
    if answer.status == 401:
        assert answer.headers["www-authenticate"].startswith('Bearer realm="')


# -- Content-Type, Content-Encoding and the payload -------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=20)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
SAMPLE = json.loads(SEED_PAYLOAD)


def _set_path(document: Any, path: list[int | str], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


SEED_PATHS: list[list[int | str]] = [
    ["ProcessTime"], ["User_DPID"], ["Client_ID"], ["AAM_Destination_Id"], ["User_count"],
    ["Users"], ["Users", 0], ["Users", 0, "AAM_UUID"], ["Users", 0, "Segments"],
    ["Users", 0, "Segments", 0, "Status"], ["Users", 0, "Segments", 0, "DateTime"],
    ["Users", 0, "Segments", 0, "Segment_ID"], ["Extra"],
]
payloads = st.one_of(
    st.just(SEED_PAYLOAD),
    st.tuples(st.sampled_from(SEED_PATHS), json_values).map(
        lambda m: json.dumps(_set_path(SAMPLE, m[0], m[1])).encode()),
    st.sampled_from([
        b"[" * 100_000 + b"]" * 100_000, b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000,
        SEED_PAYLOAD[:-2] + b',"Deep":' + b"[" * 5000 + b"]" * 5000 + b"}",
        SEED_PAYLOAD.replace(b'"12345"', b"1" + b"0" * 5000),
        SEED_PAYLOAD.replace(b'"12345"', b"1e999999"), SEED_PAYLOAD.replace(b'"12345"', b"NaN"),
        SEED_PAYLOAD.replace(b'"12345"', b"-0"), SEED_PAYLOAD.replace(b'"12345"', b"12345.0"),
        SEED_PAYLOAD.replace(b'"14356"', b'"' + b"x" * 60_000 + b'"'),
        SEED_PAYLOAD.replace(b"Wed Jul 27", b"Wed \xff\xfe 27"),
        SEED_PAYLOAD.replace(b"Wed Jul 27", b"Wed \xed\xa0\x80 27"),
        SEED_PAYLOAD.replace(b"Wed Jul 27", b"Wed \\ud800 27"),
        b"\xef\xbb\xbf" + SEED_PAYLOAD, SEED_PAYLOAD.decode().encode("utf-16"),
        SEED_PAYLOAD + b"\x00", SEED_PAYLOAD + b" {}", b"", b"null", b"{}", b"\x00" * 100,
        SEED_PAYLOAD.replace(b'"ProcessTime"', b'"ProcessTime": 1, "ProcessTime"'),
    ]),
    st.binary(max_size=200),
)
json_content_type = st.one_of(
    st.sampled_from([b"application/json", b"application/json; charset=utf-8",
                     b"Application/JSON ; Charset=\"UTF-8\"", b"application/json; charset=latin1",
                     b"application/json, text/plain", b"text/json", b"application/jsonx",
                     b"application/*", b"", b"application/json;;", b"application/json; x=\""]),
    header_value,
)
encodings = st.sampled_from([None, b"gzip", b"x-gzip", b"GZIP", b"identity", b"br", b"deflate",
                             b"gzip, gzip", b"gzip, identity", b"", b" gzip ", b"compress"])


def _media_ok(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media, *params = content_type.decode("latin-1").split(";")
    if media.strip(" \t").lower() != "application/json":
        return False
    for param in params:
        name, _, value = param.strip(" \t").partition("=")
        if name.lower() == "charset" and value.strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _oracle_document(body: bytes, encoding: bytes | None) -> Any:
    """The JSON document a valid request carries, or None (which forbids a 2xx)."""
    coding = (encoding or b"").strip(b" \t").lower()
    if coding in (b"gzip", b"x-gzip"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            return None
    elif coding not in (b"", b"identity"):
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


@FUZZ
@given(payload=payloads, content_type=st.one_of(st.none(), json_content_type),
       encoding=encodings, compress=st.booleans(), route=st.sampled_from([b"/segments/aam",
                                                                           b"/any-json"]))
async def test_fuzz_content_headers_and_payload(
        adv_gateway: RunningGateway, token: str, backend: tuple[str, Any],
        client_ssl_ctx: ssl.SSLContext, payload: bytes, content_type: bytes | None,
        encoding: bytes | None, compress: bool, route: bytes) -> None:
    body = gzip.compress(payload) if compress else payload
    headers = [(b"Authorization", b"Bearer " + token.encode())]
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
    before = await backend_count(backend[0])
    answer = await exchange(adv_gateway, client_ssl_ctx, request(b"POST", route, headers, body))
    called = await backend_count(backend[0]) - before
    assert called == (1 if 200 <= answer.status < 300 else 0), answer
    if called:
        assert _media_ok(content_type), content_type
        document = _oracle_document(body, encoding)
        assert document is not None, (payload[:100], encoding, compress)
        if route == b"/segments/aam":
            assert isinstance(document, dict) and document.get("Users"), document
