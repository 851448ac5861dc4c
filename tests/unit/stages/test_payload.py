"""Unit tests for the payload stage: every rule of ``aam-segments`` (the faithful default) and
``aam-segments-strict`` (docs/configuration.md), and JSON checks.

Each rule has a passing and a failing case; failures are checked for the JSON path the
description names, and every description for the RFC 6749 §5.2 character set. A rule both
profiles share is tested with both (the ``validate`` fixture).
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidPayloadError
from gateway.stages.payload import (
    PayloadViolation,
    validate_aam_segments,
    validate_aam_segments_strict,
    validate_json,
)
from gateway.tools.payloads import java_date, make_payload, make_payload_bytes

# Adobe's sample push exactly as printed on Adobe's page (docs/adobe.md), "User_count": "2"
# beside one user included; tests/vectors/segment-payload.json holds the same bytes.
SAMPLE_PUSH = b"""{
"ProcessTime": "Wed Jul 27 16:17:42 UTC 2016",
"User_DPID": "12345",
"Client_ID": "74323",
"AAM_Destination_Id": "423",
"User_count": "2",
"Users": [{
   "AAM_UUID": "19393572368547369350319949416899715727",
   "DataPartner_UUID": "4250948725049857",
   "Segments": [{
            "Segment_ID": "14356",
            "Status": "1",
            "DateTime": "Wed Jul 27 16:17:22 UTC 2016"
         }
      ]
   }]
}
"""
SAMPLE_VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "segment-payload.json"
DESCRIPTION_CHARS = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]*$")
DATE = "Wed Jul 27 16:17:42 UTC 2016"


def doc() -> dict[str, Any]:
    """A valid push with two users, the second with two segments."""
    return {
        "ProcessTime": DATE,
        "User_DPID": "12345",
        "Client_ID": "74323",
        "AAM_Destination_Id": "423",
        "User_count": "2",
        "Users": [
            {
                "AAM_UUID": "19393572368547369350319949416899715727",
                "DataPartner_UUID": "4250948725049857",
                "Segments": [{"Segment_ID": "14356", "Status": "1", "DateTime": DATE}],
            },
            {
                "AAM_UUID": "29393572368547369350319949416899715727",
                "DataPartner_UUID": "",
                "Segments": [
                    {"Segment_ID": "14357", "Status": "1", "DateTime": DATE},
                    {"Segment_ID": "14358", "Status": "0", "DateTime": DATE},
                ],
            },
        ],
    }


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def with_change(change: Callable[[dict[str, Any]], None]) -> bytes:
    value = copy.deepcopy(doc())
    change(value)
    return encode(value)


Validate = Callable[[bytes], None]
PROFILES = {"aam-segments": validate_aam_segments,
            "aam-segments-strict": validate_aam_segments_strict}


@pytest.fixture(params=list(PROFILES))
def validate(request: pytest.FixtureRequest) -> Validate:
    """Each Adobe profile in turn."""
    return PROFILES[request.param]


def rejects(body: bytes, validate: Validate = validate_aam_segments_strict) -> str:
    """Validate ``body``, expect PayloadViolation, check and return its description."""
    with pytest.raises(PayloadViolation) as caught:
        validate(body)
    text = caught.value.text
    assert isinstance(caught.value, InvalidPayloadError)  # 400 invalid_payload
    assert text.startswith(caught.value.path + ": ")
    # Our own description survived GatewayError's character check (it was not replaced).
    assert text != InvalidPayloadError.description
    assert DESCRIPTION_CHARS.match(text) and len(text) < 200, text
    return text


def seg(value: dict[str, Any], user: int = 1, segment: int = 1) -> dict[str, Any]:
    return value["Users"][user]["Segments"][segment]  # type: ignore[no-any-return]


# --- valid documents -------------------------------------------------------------------


def test_adobes_sample_push_passes(validate: Validate) -> None:
    validate(SAMPLE_PUSH)


def test_the_sample_push_vector_passes(validate: Validate) -> None:
    validate(SAMPLE_VECTOR.read_bytes())


def test_base_document_passes(validate: Validate) -> None:
    validate(encode(doc()))


def test_table_spelling_of_destination_id_passes(validate: Validate) -> None:
    def change(v: dict[str, Any]) -> None:
        v["AAM_Destination_ID"] = v.pop("AAM_Destination_Id")

    validate(with_change(change))


@pytest.mark.parametrize(("lower", "upper"), [("423", "423"), ("423", 423), (423, "0423")])
def test_both_destination_spellings_pass_when_equal(
        lower: object, upper: object, validate: Validate) -> None:
    def change(v: dict[str, Any]) -> None:
        v["AAM_Destination_Id"], v["AAM_Destination_ID"] = lower, upper

    validate(with_change(change))


def test_numbers_as_json_numbers_pass(validate: Validate) -> None:
    def change(v: dict[str, Any]) -> None:
        v.update(User_DPID=12345, Client_ID=74323, AAM_Destination_Id=423, User_count=2)
        for user in v["Users"]:
            for s in user["Segments"]:
                s.update(Segment_ID=int(s["Segment_ID"]), Status=int(s["Status"]))

    validate(with_change(change))


@pytest.mark.parametrize("value", ["", None, "ABCDEF0123456789abcdef"])
def test_data_partner_uuid_blank_null_or_set_passes(value: object, validate: Validate) -> None:
    validate(with_change(lambda v: v["Users"][0].update(DataPartner_UUID=value)))


def test_data_partner_uuid_absent_passes(validate: Validate) -> None:
    validate(with_change(lambda v: v["Users"][0].pop("DataPartner_UUID")))


@pytest.mark.parametrize("regions", [[], ["9"], [9, "7"], None])
def test_aam_regions_list_or_null_passes(regions: object, validate: Validate) -> None:
    validate(with_change(lambda v: v["Users"][0].update(AAM_Regions=regions)))


@pytest.mark.parametrize(
    "segment_id", ["14356", "free text: segment #1 (beta)", "seg-\u00e9", 7, -1]
)
def test_segment_id_free_text_or_integer_passes(segment_id: object, validate: Validate) -> None:
    validate(with_change(lambda v: seg(v).update(Segment_ID=segment_id)))


@pytest.mark.parametrize("status", ["1", "0", 1, 0])
def test_status_one_or_zero_passes(status: object, validate: Validate) -> None:
    validate(with_change(lambda v: seg(v).update(Status=status)))


def test_empty_segments_list_passes(validate: Validate) -> None:
    validate(with_change(lambda v: v["Users"][0].update(Segments=[])))


@pytest.mark.parametrize("count", ["2", "1", "99", 0, "0"])
def test_user_count_not_compared_with_users(count: object, validate: Validate) -> None:
    validate(with_change(lambda v: v.update(User_count=count)))


@pytest.mark.parametrize("value", ["0", "1", "123456789012345678", 0, 10**18 - 1])
def test_integer_fields_bounds_pass(value: object, validate: Validate) -> None:
    validate(with_change(lambda v: v.update(User_DPID=value)))


@pytest.mark.parametrize("client_id", ["74323", "acme-eu", "", 74323])
def test_client_id_string_or_integer_passes(client_id: object, validate: Validate) -> None:
    validate(with_change(lambda v: v.update(Client_ID=client_id)))


@pytest.mark.parametrize(
    "date",
    [
        "Wed Jul 27 16:17:42 UTC 2016",
        "Wed Jul 27 16:17:42 GMT 2016",
        "Wed Jul 27 18:17:42 CEST 2016",
        "Wed Jul 27 21:47:42 GMT+05:30 2016",
        "Thu Jul  7 16:17:42 UTC 2016",  # the `date` command pads the day with a space
        "Thu Jul 7 16:17:42 UTC 2016",
    ],
)
def test_java_dates_pass(date: str, validate: Validate) -> None:
    def change(v: dict[str, Any]) -> None:
        v["ProcessTime"] = seg(v)["DateTime"] = date

    validate(with_change(change))


def test_extra_fields_pass_everywhere(validate: Validate) -> None:
    def change(v: dict[str, Any]) -> None:
        v["Extra"] = {"nested": [1, 2.5, None, True, {"x": "y"}]}
        v["Users"][0]["Extra"] = "anything"
        seg(v)["Extra"] = [1e300, -0]

    validate(with_change(change))


def test_generated_payloads_pass(validate: Validate) -> None:
    for seed in range(20):
        validate(make_payload_bytes(seed % 7 + 1, random.Random(seed)))


# --- the destination id ----------------------------------------------------------------


def test_no_destination_id_fails() -> None:
    text = rejects(with_change(lambda v: v.pop("AAM_Destination_Id")))
    assert text.startswith("AAM_Destination_Id: is required")


def test_two_different_destination_ids_fail(validate: Validate) -> None:
    text = rejects(with_change(lambda v: v.update(AAM_Destination_ID="424")), validate)
    assert text == "AAM_Destination_ID: differs from AAM_Destination_Id"


# --- missing fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "field", "path"),
    [
        ((), "ProcessTime", "ProcessTime"),
        ((), "User_DPID", "User_DPID"),
        ((), "Client_ID", "Client_ID"),
        ((), "User_count", "User_count"),
        ((), "Users", "Users"),
        (("Users", 1), "AAM_UUID", "Users[1].AAM_UUID"),
        (("Users", 1), "Segments", "Users[1].Segments"),
        (("Users", 1, "Segments", 1), "Segment_ID", "Users[1].Segments[1].Segment_ID"),
        (("Users", 1, "Segments", 1), "Status", "Users[1].Segments[1].Status"),
        (("Users", 1, "Segments", 1), "DateTime", "Users[1].Segments[1].DateTime"),
    ],
)
def test_missing_required_field_fails_with_path(
    where: tuple[str | int, ...], field: str, path: str
) -> None:
    def change(v: dict[str, Any]) -> None:
        target: Any = v
        for step in where:
            target = target[step]
        del target[field]

    assert rejects(with_change(change)) == f"{path}: is required"


# --- wrong values and types ------------------------------------------------------------


@pytest.mark.parametrize("status", ["2", 2, "01", " 1", "1 ", "true", True, 1.0, None, "", -1])
def test_status_other_than_one_or_zero_fails_with_path(status: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: seg(v).update(Status=status)), validate)
    assert text.startswith("Users[1].Segments[1].Status: must be 1 or 0")


def test_status_error_does_not_echo_the_value(validate: Validate) -> None:
    text = rejects(with_change(lambda v: seg(v).update(Status="9" * 500)), validate)
    assert text == "Users[1].Segments[1].Status: must be 1 or 0"


@pytest.mark.parametrize("field", ["User_DPID", "User_count", "AAM_Destination_Id"])
@pytest.mark.parametrize(
    "value",
    [True, False, 1.0, 1.5, -1, "-1", "+1", "12a", "", " 1", "1 ", "1\n", "1e3", "0x1F",
     "\u0661", "1234567890123456789", 10**18, None, [], {}],
)  # fmt: skip
def test_integer_field_wrong_type_or_value_fails(field: str, value: object) -> None:
    text = rejects(with_change(lambda v: v.update({field: value})))
    assert text.startswith(f"{field}: must be an integer or a string of 1 to 18 digits")


def test_type_error_names_the_json_type_received(validate: Validate) -> None:
    text = rejects(with_change(lambda v: v.update(User_DPID=True)), validate)
    assert text.endswith("(got boolean)")


@pytest.mark.parametrize("value", [1.5, True, None, [], {}])
def test_client_id_wrong_type_fails(value: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: v.update(Client_ID=value)), validate)
    assert text.startswith("Client_ID: ")


@pytest.mark.parametrize("value", ["", 19393572368547369350319949416899715727, None, []])
def test_aam_uuid_not_a_non_empty_string_fails(value: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: v["Users"][1].update(AAM_UUID=value)), validate)
    assert text.startswith("Users[1].AAM_UUID: must be a non-empty string")


@pytest.mark.parametrize("value", [4250948725049857, True, [], {}])
def test_data_partner_uuid_wrong_type_fails(value: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: v["Users"][0].update(DataPartner_UUID=value)), validate)
    assert text.startswith("Users[0].DataPartner_UUID: must be a string")


@pytest.mark.parametrize("regions", ["9", 9, {"9": 1}, True])
def test_aam_regions_not_a_list_fails(regions: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: v["Users"][0].update(AAM_Regions=regions)), validate)
    assert text.startswith("Users[0].AAM_Regions: must be a list")


@pytest.mark.parametrize("segment_id", ["", 1.5, True, None, ["1"]])
def test_segment_id_wrong_type_fails(segment_id: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: seg(v).update(Segment_ID=segment_id)), validate)
    assert text.startswith("Users[1].Segments[1].Segment_ID: must be a non-empty string")


@pytest.mark.parametrize(
    "date",
    ["2016-07-27T16:17:42Z", "", "Wed Jul 27 16:17:42 UTC 2016\n", "Wed Jul 27 16:17:42 2016",
     "Wed Jul 27 16:17:42 UTC 16", " Wed Jul 27 16:17:42 UTC 2016", 1469636262,
     "Wed Jul 27 16:17:42 UTC 2016\nWed Jul 27 16:17:42 UTC 2016"],
)  # fmt: skip
def test_bad_segment_date_fails_with_path(date: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: seg(v).update(DateTime=date)), validate)
    assert text.startswith("Users[1].Segments[1].DateTime: must be a date like")


def test_bad_process_time_fails(validate: Validate) -> None:
    text = rejects(with_change(lambda v: v.update(ProcessTime="yesterday")), validate)
    assert text.startswith("ProcessTime: must be a date like")


def test_first_bad_date_in_document_order_is_named(validate: Validate) -> None:
    def change(v: dict[str, Any]) -> None:
        v["Users"][0]["Segments"][0]["DateTime"] = "later"
        seg(v)["DateTime"] = "earlier"  # Users[1] comes after Users[0]

    assert rejects(with_change(change), validate).startswith("Users[0].Segments[0].DateTime: ")


@pytest.mark.parametrize("users", [[], None, {}, "users"])
def test_users_not_a_non_empty_list_fails(users: object, validate: Validate) -> None:
    assert rejects(with_change(lambda v: v.update(Users=users)), validate).startswith(
        "Users: must be a non-empty list"
    )


@pytest.mark.parametrize("user", ["u", 1, None, []])
def test_user_not_an_object_fails(user: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: v["Users"].append(user)), validate)
    assert text.startswith("Users[2]: must be an object")


@pytest.mark.parametrize("segments", ["14356", None, {}])
def test_segments_not_a_list_fails(segments: object, validate: Validate) -> None:
    text = rejects(with_change(lambda v: v["Users"][0].update(Segments=segments)), validate)
    assert text.startswith("Users[0].Segments: must be a list")


def test_segment_not_an_object_fails(validate: Validate) -> None:
    text = rejects(with_change(lambda v: v["Users"][0]["Segments"].append("14356")), validate)
    assert text == "Users[0].Segments[1]: must be an object (got string)"


def test_duplicate_key_with_a_bad_value_fails(validate: Validate) -> None:
    body = SAMPLE_PUSH.replace(b'"Status": "1"', b'"Status": "2", "Status": "1"')
    assert rejects(body, validate) == "Users[0].Segments[0].Status: must be 1 or 0"


# --- documents that are not JSON objects -----------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b'{"ProcessTime": }', b"{'a': 1}", b'{"a": [1,]}', b"nul",
     SAMPLE_PUSH + b"{}", SAMPLE_PUSH[:-10], b"\xef\xbb\xbf" + SAMPLE_PUSH],
)  # fmt: skip
def test_broken_json_fails(body: bytes) -> None:
    assert rejects(body).startswith("payload: malformed JSON")
    assert rejects(body, validate_json).startswith("payload: malformed JSON")


@pytest.mark.parametrize(
    "body",
    [SAMPLE_PUSH.replace(b"Wed Jul 27 16:17:22", b"Wed Jul 27 16:17:22\xff"),
     b'{"Extra": "\xc3\x28", ' + SAMPLE_PUSH[1:],  # in a field msgspec only skips
     b'{"Extra": "\xed\xa0\x80", ' + SAMPLE_PUSH[1:]],  # an encoded surrogate
)  # fmt: skip
def test_invalid_utf8_fails(body: bytes) -> None:
    assert rejects(body).startswith("payload: not valid UTF-8")
    assert rejects(body, validate_json).startswith("payload: not valid UTF-8")


@pytest.mark.parametrize("body", [b"[]", b"[" + SAMPLE_PUSH + b"]", b'"x"', b"1", b"null"])
def test_top_level_not_an_object_fails(body: bytes, validate: Validate) -> None:
    assert rejects(body, validate).startswith("payload: must be a JSON object")


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000,
     b'{"Extra": ' + b"[" * 100_000 + b"]" * 100_000 + b", " + SAMPLE_PUSH[1:],
     SAMPLE_PUSH.replace(b'"Segments"', b'"AAM_Regions": ' + b"[" * 100_000 + b"]" * 100_000
                         + b', "Segments"')],
)  # fmt: skip
def test_deep_nesting_fails_cleanly(body: bytes) -> None:
    text = rejects(body)
    assert text.startswith("payload: ")
    assert rejects(body, validate_json).startswith("payload: ")


def test_non_ascii_in_an_error_is_never_echoed(validate: Validate) -> None:
    body = b'{"\xc3\xa9": 1, "Users": "\xc3\xa9"}'
    assert rejects(body, validate) == "Users: must be a non-empty list (got string)"


# --- validate_json ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [SAMPLE_PUSH, b"[]", b"[1, 2]", b'"x"', b" 1 ", b"null", b"1e999", '"\u00e9"'.encode()]
)
def test_validate_json_accepts_any_json(body: bytes) -> None:
    validate_json(body)


# --- property: nothing but InvalidPayloadError escapes ---------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def check_only_payload_errors(body: bytes) -> None:
    for validate in (validate_aam_segments, validate_json):
        try:
            validate(body)
        except InvalidPayloadError as error:
            assert DESCRIPTION_CHARS.match(error.text) and len(error.text) < 200
            assert error.text != InvalidPayloadError.description


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_invalid_payload(body: bytes) -> None:
    check_only_payload_errors(body)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["ProcessTime", "User_DPID", "Client_ID", "AAM_Destination_Id",
                     "User_count", "Users", "AAM_UUID", "DataPartner_UUID", "AAM_Regions",
                     "Segments", "Segment_ID", "Status", "DateTime"]),
    json_values,
)  # fmt: skip
def test_any_field_value_only_raises_invalid_payload(field: str, value: Any) -> None:
    v = doc()
    target = v if field in v else v["Users"][1] if field in v["Users"][1] else seg(v)
    target[field] = value
    check_only_payload_errors(encode(v))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(SAMPLE_PUSH) - 1), st.binary(min_size=1, max_size=4))
def test_corrupted_sample_push_only_raises_invalid_payload(at: int, junk: bytes) -> None:
    check_only_payload_errors(SAMPLE_PUSH[:at] + junk + SAMPLE_PUSH[at + 1 :])


# --- the payload generator -------------------------------------------------------------


def test_generator_shape_is_what_iris_sends() -> None:
    now = datetime(2016, 7, 27, 16, 17, 42, tzinfo=UTC)
    value = make_payload(50, random.Random(7), now=now)
    assert value["ProcessTime"] == "Wed Jul 27 16:17:42 UTC 2016"
    assert value["User_count"] == "50" and len(value["Users"]) == 50
    for key in ("User_DPID", "Client_ID", "AAM_Destination_Id", "User_count"):
        assert value[key].isdigit()
    for user in value["Users"]:
        assert re.fullmatch(r"[1-9][0-9]{37}", user["AAM_UUID"])
        assert re.fullmatch(r"(?:[0-9a-f]{32})?", user["DataPartner_UUID"])
        assert 1 <= len(user["Segments"]) <= 3
        for s in user["Segments"]:
            assert s["Segment_ID"].isdigit() and s["Status"] in ("1", "0")
            assert s["DateTime"].endswith(" UTC 2016")


def test_generator_is_reproducible_with_a_fixed_now() -> None:
    now = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    first = make_payload_bytes(30, random.Random(3), now=now)
    assert first == make_payload_bytes(30, random.Random(3), now=now)
    assert json.loads(first) == make_payload(30, random.Random(3), now=now)


def test_generator_refuses_zero_users() -> None:
    with pytest.raises(ValueError):
        make_payload(0, random.Random(0))


def test_java_date_matches_java_format() -> None:
    assert java_date(datetime(2016, 7, 7, 6, 5, 4, tzinfo=UTC)) == "Thu Jul 07 06:05:04 UTC 2016"
    assert java_date(datetime(2016, 7, 7, 6, 5, 4)) == "Thu Jul 07 06:05:04 UTC 2016"
