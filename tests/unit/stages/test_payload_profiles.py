"""The payload profiles side by side (docs/configuration.md ``payload``): what the faithful
``aam-segments`` accepts that the strict one refuses, the ``none`` profile, and the sliced
check of large bodies giving the same verdict as the one-call check."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import RouteSettings
from gateway.stages.payload import (
    LARGE_BODY_BYTES,
    PayloadViolation,
    payload_check,
    validate_aam_segments,
    validate_aam_segments_strict,
)
from gateway.stages.payload import aam as payload_aam
from gateway.stages.payload.aam import check_sliced, check_whole
from gateway.stages.payload.profiles import FAITHFUL, STRICT, Profile
from gateway.tools.payloads import IRIS_SHAPED_PUSH, make_payload, make_payload_bytes

DATE = "Wed Jul 27 16:17:42 UTC 2016"


def minimal() -> dict[str, Any]:
    """What every Adobe sample agrees a push is, and nothing more."""
    return {"Users": [{"AAM_UUID": "1", "Segments": [{"Segment_ID": "7", "Status": "1"}]}]}


def violation(check: Any, body: bytes) -> PayloadViolation:
    with pytest.raises(PayloadViolation) as caught:
        check(body)
    return caught.value


def test_the_iris_shaped_push_passes_faithful_and_fails_strict() -> None:
    validate_aam_segments(IRIS_SHAPED_PUSH)
    refused = violation(validate_aam_segments_strict, IRIS_SHAPED_PUSH)
    assert refused.text == "User_DPID: is required" and refused.reason == "missing_field"


def test_a_customised_format_without_user_dpid_or_client_id_passes_faithful() -> None:
    value = json.loads(IRIS_SHAPED_PUSH)
    del value["Client_ID"]
    validate_aam_segments(json.dumps(value).encode())
    assert violation(validate_aam_segments_strict, json.dumps(value).encode()).path in (
        "User_DPID", "Client_ID")


def test_the_minimal_push_passes_faithful_only() -> None:
    body = json.dumps(minimal()).encode()
    validate_aam_segments(body)
    assert violation(validate_aam_segments_strict, body).reason == "missing_field"


@pytest.mark.parametrize(("field", "path"), [
    ("Users", "Users"), ("AAM_UUID", "Users[0].AAM_UUID"), ("Segments", "Users[0].Segments"),
    ("Segment_ID", "Users[0].Segments[0].Segment_ID"), ("Status", "Users[0].Segments[0].Status")])
def test_what_faithful_still_requires(field: str, path: str) -> None:
    value = minimal()
    targets = [value, value["Users"][0], value["Users"][0]["Segments"][0]]
    next(t for t in targets if field in t).pop(field)
    found = violation(validate_aam_segments, json.dumps(value).encode())
    assert (found.text, found.path, found.reason) == (f"{path}: is required", path,
                                                      "missing_field")


@pytest.mark.parametrize(("field", "value", "path"), [
    ("User_DPID", None, "User_DPID"), ("User_DPID", "12a", "User_DPID"),
    ("User_count", True, "User_count"), ("AAM_Destination_Id", "", "AAM_Destination_Id"),
    ("Client_ID", 1.5, "Client_ID"), ("ProcessTime", "2016-07-27", "ProcessTime"),
    ("ProcessTime", None, "ProcessTime")])
def test_faithful_optional_fields_are_typed_when_present(field: str, value: object,
                                                         path: str) -> None:
    body = json.dumps({**minimal(), field: value}).encode()
    found = violation(validate_aam_segments, body)
    assert found.path == path and found.reason == "invalid_value"


def test_faithful_segment_date_is_optional_but_checked() -> None:
    value = minimal()
    validate_aam_segments(json.dumps(value).encode())
    value["Users"][0]["Segments"][0]["DateTime"] = "yesterday"
    assert violation(validate_aam_segments, json.dumps(value).encode()).path == \
        "Users[0].Segments[0].DateTime"


@pytest.mark.parametrize("value", ["1234567890123456789", 10**18, 2**70])
def test_integers_past_18_digits_pass_faithful_only(value: object) -> None:
    body = json.dumps({**json.loads(IRIS_SHAPED_PUSH), "User_DPID": value}).encode()
    validate_aam_segments(body)
    strict = json.dumps({**json.loads(IRIS_SHAPED_PUSH), "User_DPID": "1", "User_count": value})
    assert violation(validate_aam_segments_strict, strict.encode()).path == "User_count"


def test_aam_regions_is_checked_on_its_first_byte_only() -> None:
    for regions, ok in ((" [ {} ] ", True), ("null", True), ('"[1]"', False), ("{}", False),
                        ("7", False)):
        body = (b'{"Users": [{"AAM_UUID": "1", "Segments": [], "AAM_Regions": '
                + regions.encode() + b"}]}")
        if ok:
            validate_aam_segments(body)
        else:
            assert violation(validate_aam_segments, body).path == "Users[0].AAM_Regions"


def _route(payload: str) -> RouteSettings:
    return RouteSettings(path="/p", upstreams=("http://127.0.0.1:1/",),
                         payload=payload)  # type: ignore[arg-type]


def test_payload_none_takes_any_json_but_not_broken_json() -> None:
    check = payload_check(_route("none"))
    for body in (b"[]", b'"x"', b"1", b'{"Users": 5}'):
        check.check(body)
    assert violation(check.check, b"{").reason == "malformed"
    assert violation(check.check, b'"\xff"').reason == "malformed"


# --- the sliced check of large bodies ----------------------------------------------------


def sliced(profile: Profile, body: bytes) -> None:
    asyncio.run(check_sliced(profile, body))


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 200 bytes, so a few users already make a "large" body."""
    monkeypatch.setattr(payload_aam, "SLICE_BYTES", 200)


def test_a_large_batch_passes_sliced() -> None:
    body = make_payload_bytes(3000, random.Random(3))
    assert len(body) > LARGE_BODY_BYTES
    sliced(FAITHFUL, body)
    sliced(STRICT, body)


@pytest.mark.usefixtures("small_slices")
def test_the_sliced_check_names_paths_in_the_whole_document() -> None:
    value = make_payload(40, random.Random(1))
    value["Users"][33]["Segments"][0]["Status"] = "2"
    with pytest.raises(PayloadViolation) as caught:
        sliced(FAITHFUL, json.dumps(value).encode())
    assert caught.value.path == "Users[33].Segments[0].Status"
    # One user larger than a slice: its Segments are sliced too.
    big = make_payload(2, random.Random(2))
    big["Users"][1]["Segments"] = [{"Segment_ID": str(i), "Status": "1", "DateTime": DATE}
                                   for i in range(30)]
    big["Users"][1]["Segments"][27]["DateTime"] = "soon"
    with pytest.raises(PayloadViolation) as caught:
        sliced(STRICT, json.dumps(big).encode())
    assert caught.value.path == "Users[1].Segments[27].DateTime"
    big["Users"][1]["Segments"][27] = {"Segment_ID": "1", "Status": 1, "DateTime": DATE}
    sliced(STRICT, json.dumps(big).encode())


def test_the_sliced_check_yields_to_the_loop_between_slices() -> None:
    body = make_payload_bytes(3000, random.Random(4))
    ticks = 0

    async def main() -> None:
        nonlocal ticks

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        await check_sliced(FAITHFUL, body)
        task.cancel()
        ticks -= before

    asyncio.run(main())
    # ~860 KB in 64 KiB slices: the other task ran between them, more than ten times.
    assert ticks > 10


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-3, max_value=3) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=8,
)
FIELDS = ["ProcessTime", "User_DPID", "Client_ID", "AAM_Destination_Id", "AAM_Destination_ID",
          "User_count", "Users", "AAM_UUID", "DataPartner_UUID", "AAM_Regions", "Segments",
          "Segment_ID", "Status", "DateTime"]


def verdict(check: Any) -> str | None:
    try:
        check()
    except PayloadViolation as error:
        return error.reason
    return None


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(FIELDS), json_values, st.integers(0, 5), st.booleans())
def test_sliced_and_whole_checks_agree(field: str, value: Any, user: int,
                                       strict: bool) -> None:
    doc = make_payload(6, random.Random(user))
    doc["Users"][user]["Segments"].append({"Segment_ID": "9", "Status": 0, "DateTime": DATE})
    target = copy.deepcopy(doc)
    where = target if field in target else target["Users"][user] \
        if field in target["Users"][user] or field in ("AAM_Regions", "DataPartner_UUID") \
        else target["Users"][user]["Segments"][-1]
    where[field] = value
    body = json.dumps(target).encode()
    profile = STRICT if strict else FAITHFUL
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(payload_aam, "SLICE_BYTES", 150)
        assert (verdict(lambda: check_whole(profile, body)) is None) == (
            verdict(lambda: sliced(profile, body)) is None), body
