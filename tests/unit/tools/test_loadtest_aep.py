"""What ``gateway loadtest --profile aep`` sends (``tools/loadtest_aep.py``): AEP's token
request as Adobe documents it (credentials form-urlencoded in the body, no Authorization
header), AEP batches as bodies, and the command line's refusals of IRIS-only options."""

from __future__ import annotations

import argparse
import random
from urllib.parse import parse_qsl

import msgspec
import pytest

from gateway.tools.loadtest_aep import aep_token_body, body_maker, push_headers, token_request
from gateway.tools.loadtest_cli import add_arguments, options_from_args
from gateway.tools.loadtest_options import LoadOptions, UsageError

URL = "https://127.0.0.1:8443/segments/aep"


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([URL, *argv])


def test_the_token_body_is_adobes_three_fields_in_order_form_encoded() -> None:
    body = aep_token_body("aep id", "s/+=&%")
    assert body == (b"grant_type=client_credentials&client_id=aep+id"
                    b"&client_secret=s%2F%2B%3D%26%25")
    assert parse_qsl(body.decode(), strict_parsing=True) == [
        ("grant_type", "client_credentials"), ("client_id", "aep id"),
        ("client_secret", "s/+=&%")]
    assert aep_token_body("a", "b", "x y").endswith(b"&scope=x+y")


def test_aep_sends_no_authorization_header_and_batches_of_profiles() -> None:
    options = options_from_args(args("--profile", "aep", "--client-id", "aep",
                                     "--secret", "s", "--profiles-per-request", "7"))
    headers, body = token_request(options)
    assert headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert body == b"grant_type=client_credentials&client_id=aep&client_secret=s"
    assert "User-Agent" not in push_headers(options)
    batch = msgspec.json.decode(body_maker(options)(random.Random(1)))
    assert len(batch["profiles"]) == 7


def test_iris_is_unchanged() -> None:
    options = options_from_args(args("--credential", "opaque-credential"))
    headers, body = token_request(options)
    assert headers["Authorization"] == "Basic opaque-credential"
    assert headers["User-Agent"] == "Adobe Audience Manager Iris"
    assert body == b"grant_type=client_credentials"
    assert options.users_per_request == 10 and options.profile == "iris"


def test_aep_defaults_to_a_thousand_profiles() -> None:
    options = options_from_args(args("--profile", "aep", "--client-id", "a", "--secret", "s"))
    assert options.users_per_request == 1000


@pytest.mark.parametrize(("argv", "message"), [
    (("--profile", "aep", "--credential", "x"), "no opaque credential"),
    (("--profile", "aep", "--client-id", "a", "--secret", "s", "--users-per-request", "5"),
     "--profiles-per-request"),
    (("--client-id", "a", "--secret", "s", "--profiles-per-request", "5"),
     "needs --profile aep"),
    (("--profile", "aep", "--client-id", "a", "--secret", "s", "--profiles-per-request", "0"),
     "--profiles-per-request: 1.."),
])
def test_options_that_cannot_work_are_refused(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options_from_args(args(*argv))


def test_aep_needs_both_id_and_secret() -> None:
    with pytest.raises(UsageError, match="--client-id and --secret"):
        LoadOptions(url=URL, profile="aep", client_id="a")
