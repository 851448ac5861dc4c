"""The signature stage against Adobe's own description of its signing (docs/adobe.md): the
worked example byte for byte, what is signed for GET and POST, encodings, several keys and
several header values."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.config import SignatureSettings
from gateway.stages.signature import SignatureCheck, SignatureError, signed_bytes

# Adobe's worked example (Digitally Signed HTTP(S) Requests): key, HmacSHA1, body, signature.
ADOBE_KEY = "sample_partner_private_key"
ADOBE_BODY = b"POST message content"
ADOBE_SIGNATURE = "+wFdR/afZNoVqtGl8/e1KJ4ykPU="


def check(signatures: list[str], body: bytes = ADOBE_BODY, *, method: str = "POST",
          target: str = "/segments/aam", keys: tuple[str, ...] = (ADOBE_KEY,),
          algorithm: str = "sha1") -> None:
    headers = CIMultiDict([("X-Signature", value) for value in signatures])
    request = make_mocked_request(method, target, headers=headers)
    policy = SignatureSettings(keys=keys, algorithm=algorithm)  # type: ignore[arg-type]
    SignatureCheck(policy, "gateway").check(request, body)


def refused(signatures: list[str], body: bytes = ADOBE_BODY, **options: object) -> None:
    with pytest.raises(SignatureError) as caught:
        check(signatures, body, **options)  # type: ignore[arg-type]
    assert caught.value.status_code == 401


def test_adobes_worked_example_verifies_byte_for_byte() -> None:
    # The digest itself, independently of the stage: the example is what HmacSHA1 gives.
    digest = hmac.new(ADOBE_KEY.encode(), ADOBE_BODY, hashlib.sha1).digest()
    assert base64.b64encode(digest).decode() == ADOBE_SIGNATURE
    check([ADOBE_SIGNATURE])
    check([" " + ADOBE_SIGNATURE + " "])  # Java's trim() is on the sender's side; be lenient
    check([digest.hex()])
    check([digest.hex().upper()])
    check([ADOBE_SIGNATURE.rstrip("=")])


def test_a_changed_body_key_or_signature_is_refused() -> None:
    refused([ADOBE_SIGNATURE], b"POST message content!")
    refused([ADOBE_SIGNATURE], keys=("another_key",))
    refused(["+wFdR/afZNoVqtGl8/e1KJ4ykPA="])
    refused([])
    refused(["not base64 at all"])
    refused([ADOBE_SIGNATURE], algorithm="sha256")


@pytest.mark.parametrize(("algorithm", "digest"), [("sha256", hashlib.sha256),
                                                   ("md5", hashlib.md5)])
def test_the_other_algorithms_adobe_offers(algorithm: str, digest: object) -> None:
    value = base64.b64encode(hmac.new(b"k", ADOBE_BODY, digest).digest()).decode()  # type: ignore[arg-type]
    check([value], keys=("k",), algorithm=algorithm)
    refused([ADOBE_SIGNATURE], keys=("k",), algorithm=algorithm)


def test_any_of_the_keys_may_have_signed() -> None:
    check([ADOBE_SIGNATURE], keys=("the_new_key", ADOBE_KEY))
    check([ADOBE_SIGNATURE], keys=(ADOBE_KEY, "the_new_key"))


def test_one_valid_value_among_several_passes() -> None:
    check(["+wFdR/afZNoVqtGl8/e1KJ4ykPA=", ADOBE_SIGNATURE])
    check([f"AAAAAAAAAAAAAAAAAAAAAAAAAAA=, {ADOBE_SIGNATURE}"])  # folded by a proxy
    refused(["+wFdR/afZNoVqtGl8/e1KJ4ykPA=", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="])
    refused([ADOBE_SIGNATURE] + ["AAAAAAAAAAAAAAAAAAAAAAAAAAA="] * 8)  # past the bound


def test_get_signs_the_path_and_query_exactly_as_sent() -> None:
    target = "/from-aam-s2s?sids=1,2,3"
    value = base64.b64encode(hmac.new(b"k", target.encode(), hashlib.sha1).digest()).decode()
    check([value], b"", method="GET", target=target, keys=("k",))
    check([value], b'{"a body": "is not signed for GET"}', method="GET", target=target,
          keys=("k",))
    for other in ("/from-aam-s2s?sids=1,2,4", "/from-aam-s2s?sids=1%2C2%2C3",
                  "/from-aam-s2s", "/from-aam-s2s?sids=1,2,3&x="):
        refused([value], b"", method="GET", target=other, keys=("k",))


def test_what_is_signed() -> None:
    get = make_mocked_request("GET", "/p%20q?a=%41&b")
    assert signed_bytes(get, b"body") == b"/p%20q?a=%41&b"
    post = make_mocked_request("POST", "/p?a=1")
    assert signed_bytes(post, b"body") == b"body"
