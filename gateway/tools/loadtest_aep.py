"""What each simulated caller sends (docs/aep.md, docs/adobe.md): the token request, the
push headers and the generated bodies of IRIS and of Adobe Experience Platform.

IRIS (``profile="iris"``): Adobe's sample token request byte for byte (an opaque or RFC 6749
Basic credential, ``application/x-www-form-urlencoded;charset=UTF-8``, body
``grant_type=client_credentials``, IRIS's ``User-Agent``), then ``aam-segments`` pushes.

AEP (``profile="aep"``): the client-credentials request of the HTTP API destination's "Body
Form Encoded" choice and of Destination SDK's ``formUrlEncode('grant_type',
'client_credentials', 'client_id', ..., 'client_secret', ...)`` template: no
``Authorization`` header, ``Content-Type: application/x-www-form-urlencoded``, the three
parameters form-urlencoded in that order. Adobe documents no ``User-Agent`` for either, so
none is set (the HTTP client's own is sent). Pushes are batches of
``gateway.tools.aep_payloads``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from urllib.parse import urlencode

from gateway.tools.aep_payloads import make_aep_batch_bytes
from gateway.tools.loadtest_options import (
    IRIS_USER_AGENT,
    TOKEN_BODY,
    TOKEN_CONTENT_TYPE,
    LoadOptions,
)
from gateway.tools.payloads import make_payload_bytes

__all__ = ["AEP_TOKEN_CONTENT_TYPE", "aep_token_body", "body_maker", "push_headers",
           "token_request"]

AEP_TOKEN_CONTENT_TYPE = "application/x-www-form-urlencoded"


def aep_token_body(client_id: str, client_secret: str, scope: str | None = None) -> bytes:
    """AEP's form body: ``grant_type``, ``client_id``, ``client_secret`` (and ``scope``
    when the destination configures one), form-urlencoded, in Adobe's order."""
    fields = [("grant_type", "client_credentials"), ("client_id", client_id),
              ("client_secret", client_secret)]
    if scope is not None:
        fields.append(("scope", scope))
    return urlencode(fields).encode("ascii")


def token_request(options: LoadOptions) -> tuple[dict[str, str], bytes]:
    """(headers, body) of the token request the simulated caller sends."""
    if options.profile == "aep":
        assert options.client_id is not None and options.client_secret is not None
        return ({"Content-Type": AEP_TOKEN_CONTENT_TYPE},
                aep_token_body(options.client_id, options.client_secret))
    return ({"User-Agent": IRIS_USER_AGENT, "Authorization": f"Basic {options.credential}",
             "Content-Type": TOKEN_CONTENT_TYPE, "Accept-Encoding": "gzip"}, TOKEN_BODY)


def push_headers(options: LoadOptions) -> dict[str, str]:
    """The headers of every push, ``Authorization`` aside."""
    if options.profile == "aep":
        return {"Content-Type": "application/json", "Accept-Encoding": "gzip"}
    return {"User-Agent": IRIS_USER_AGENT, "Content-Type": "application/json",
            "Accept-Encoding": "gzip"}


def body_maker(options: LoadOptions) -> Callable[[random.Random], bytes]:
    """One generated push body per call, of ``users_per_request`` users or profiles."""
    count = options.users_per_request
    if options.profile == "aep":
        return lambda rng: make_aep_batch_bytes(count, rng)
    return lambda rng: make_payload_bytes(count, rng)
