"""The slice-at-a-time check of a schema route's large bodies (``stages/payload/schema_slices.py``)
against the whole check it replaces: the same verdict on good and broken AEP batches, the
same JSON path for a single problem, and the whole check kept for schemas the slices would
read differently. Also: the shipped ``docs/schemas/aep-profiles.json`` takes both shapes of
Adobe's template examples and refuses what a template never renders."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.config import PayloadSchema
from gateway.stages.payload.errors import PayloadViolation
from gateway.stages.payload.schema import SchemaCheck
from gateway.stages.payload.schema_slices import SlicedSchemaCheck
from gateway.tools.aep_payloads import make_aep_batch

SHIPPED = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "aep-profiles.json"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def schema_of(document: dict[str, Any]) -> PayloadSchema:
    return PayloadSchema(path=Path("test.json"), text=json.dumps(document))


@pytest.fixture(scope="module")
def shipped() -> tuple[SchemaCheck, SlicedSchemaCheck]:
    schema = PayloadSchema(path=SHIPPED, text=SHIPPED.read_text())
    whole = SchemaCheck(schema)
    sliced = SlicedSchemaCheck.build(schema, whole)
    assert sliced is not None
    return whole, sliced


def verdict(check: Callable[[bytes], Any], body: bytes) -> str | None:
    try:
        result = check(body)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except PayloadViolation as violation:
        return violation.text
    return None


def batch(profiles: int = 1500) -> dict[str, Any]:
    return make_aep_batch(profiles, random.Random(profiles), now=NOW)


def broken(change: Callable[[dict[str, Any]], None]) -> bytes:
    document = batch()
    change(document)
    return msgspec.json.encode(document)


def _status(d: dict[str, Any]) -> None:
    next(iter(d["profiles"][1234]["segmentMembership"]["ups"].values()))["status"] = "gone"


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a status no template renders": _status,
    "a profile without audiences": lambda d: d["profiles"][900].pop("segmentMembership"),
    "an empty identity id": lambda d: d["profiles"][5]["identityMap"]["ecid"][0].update(id=""),
    "no profiles": lambda d: d.update(profiles=[]),
    "profiles not a list": lambda d: d.update(profiles={"a": 1}),
    "profiles missing": lambda d: d.pop("profiles"),
    "an audience id of the wrong type": lambda d: d.update(audienceId=7),
    "a profile that is a string": lambda d: d["profiles"].insert(700, "x"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_broken_batch_is_refused_by_both_with_the_same_path(
        shipped: tuple[SchemaCheck, SlicedSchemaCheck], name: str) -> None:
    whole, sliced = shipped
    body = broken(MUTATIONS[name])
    expected = verdict(whole, body)
    assert expected is not None
    assert verdict(sliced, body) == expected


@pytest.mark.parametrize("body", [
    b'{"profiles": [', b"[1, 2]", b'"profiles"', b'{"profiles": []} x',
    b'{"profiles": [{"segmentMembership": {"ups": {}}}], "profiles": 3}',
    '{"profiles": [{"segmentMembership": {"ups": {"\u00e9": {"status": "realized"}}}}]}'.encode(),
    b'{"profiles": [{"segmentMembership": {"ups": {"a": {"status": "realized"}}}}], "a": "\xff"}',
])
def test_odd_bodies_get_the_same_verdict(shipped: tuple[SchemaCheck, SlicedSchemaCheck],
                                         body: bytes) -> None:
    whole, sliced = shipped
    assert verdict(sliced, body) == verdict(whole, body)


def test_a_good_batch_passes_both(shipped: tuple[SchemaCheck, SlicedSchemaCheck]) -> None:
    whole, sliced = shipped
    body = msgspec.json.encode(batch(3000))
    assert verdict(whole, body) is None and verdict(sliced, body) is None


def test_the_second_slice_names_its_own_index(
        shipped: tuple[SchemaCheck, SlicedSchemaCheck]) -> None:
    _, sliced = shipped
    text = verdict(sliced, broken(_status))
    assert text is not None and text.startswith("profiles[1234].segmentMembership.ups.")
    assert text.endswith(".status: fails the schema's enum")


ADOBE_RESULT = {  # the shape of Adobe's "segments, identities and attributes" template result
    "profiles": [
        {"attributes": {"firstName": "Ada", "birthDate": None},
         "identities": [{"type": "email", "id": "ada@example.com"},
                        {"type": "external_id", "id": "42"}],
         "AdobeExperiencePlatformSegments": {"add": ["3a3c7f0e-seg"], "remove": ["9f-seg"]}},
        {"identities": [{"type": "email", "id": "grace@example.com"}],
         "AdobeExperiencePlatformSegments": {"add": ["3a3c7f0e-seg"], "remove": []}},
    ],
}
AGGREGATED = {"audienceId": "788d-seg", "audienceNamespace": "ups", "profiles": [
    {"segmentMembership": {"ups": {"788d-seg": {"lastQualificationTime":
                                                "2020-11-20T13:15:49Z", "status": "realized"}}},
     "identityMap": {"GAID": [{"id": "e4fe9bde"}]}}]}


@pytest.mark.parametrize("document", [ADOBE_RESULT, AGGREGATED])
def test_the_shipped_schema_takes_adobes_template_shapes(
        shipped: tuple[SchemaCheck, SlicedSchemaCheck], document: dict[str, Any]) -> None:
    whole, sliced = shipped
    body = json.dumps(document).encode()
    assert verdict(whole, body) is None and verdict(sliced, body) is None


@pytest.mark.parametrize("document", [
    {"allOf": [{"type": "object"}], "properties": {"p": {"type": "array", "items": {}}}},
    {"properties": {"p": {"type": "array", "items": {}, "uniqueItems": True}}},
    {"properties": {"p": {"type": "array", "items": {"$ref": "#/properties/q"}},
                    "q": {"type": "string"}}},
    {"properties": {"p": {"type": "array", "prefixItems": [{}]}}},
    {"type": "array", "items": {}},
    {"properties": {"p": {"type": "object"}}},
])
def test_schemas_the_slices_would_read_differently_keep_the_whole_check(
        document: dict[str, Any]) -> None:
    schema = schema_of(document)
    assert SlicedSchemaCheck.build(schema, SchemaCheck(schema)) is None


def test_min_items_still_sees_the_arrays_length() -> None:
    schema = schema_of({"type": "object", "properties": {
        "p": {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 4}}})
    whole = SchemaCheck(schema)
    sliced = SlicedSchemaCheck.build(schema, whole)
    assert sliced is not None
    for body in (b'{"p": [1, 2]}', b'{"p": [1, 2, 3]}', b'{"p": [1, 2, 3, 4, 5]}',
                 b'{"p": [1, "2", 3]}'):
        assert verdict(sliced, body) == verdict(whole, body), body


HTTP_API = SHIPPED.with_name("aep-http-api-profile.json")
HTTP_API_EXPORT = {  # the shape of the HTTP API destination's export example, one profile
    "person": {"birthDate": "1990-01-01", "name": {"firstName": "Ada", "lastName": "L"}},
    "personalEmail": {"address": "ada@example.com"},
    "segmentMembership": {"ups": {
        "7841ba61-seg": {"lastQualificationTime": "2022-01-11T21:24:39Z", "status": "exited"},
        "59bd2fkd-seg": {"lastQualificationTime": "2022-01-02T23:37:33Z", "status": "realized",
                         "createdAt": 1648553325000, "name": "First name equals Ada"}}},
    "identityMap": {"ecid": [{"id": "14575006536349286404619648085736425115"}],
                    "email_lc_sha256": [{"id": "655332b5fa2aea4498bf7a290cff017cb4"}]},
}


def test_the_http_api_schema_takes_its_export_and_refuses_a_status_it_never_sends() -> None:
    check = SchemaCheck(PayloadSchema(path=HTTP_API, text=HTTP_API.read_text()))
    assert verdict(check, json.dumps(HTTP_API_EXPORT).encode()) is None
    document = json.loads(json.dumps(HTTP_API_EXPORT))
    document["segmentMembership"]["ups"]["7841ba61-seg"]["status"] = "gone"
    assert verdict(check, json.dumps(document).encode()) == (
        "segmentMembership.ups.7841ba61-seg.status: fails the schema's enum")
    assert verdict(check, b'{"identityMap": {}}') == "segmentMembership: is required"
