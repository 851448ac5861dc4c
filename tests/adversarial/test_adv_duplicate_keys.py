"""Duplicate JSON keys (RFC 8259 §4) are refused at any depth with their JSON path
(``stages/payload/json_keys.py``): the outside attack run pushed ``{"Users":[valid],"Users":[...]}``
and a user with two ``AAM_UUID``s through ``aam-segments``, and the backend received them,
free to read whichever copy its parser keeps.

The shapes include the ones aimed at the cheap count that clears most bodies: a duplicate
balanced by a field msgspec fills with a default, by an escaped colon, by an escaped key
name; duplicates inside the raw ``AAM_Regions``, and in the sliced path of large bodies.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config.model import PayloadSchema
from gateway.serve.server import RunningGateway
from gateway.stages.payload.aam import check_sliced, check_whole
from gateway.stages.payload.errors import PayloadViolation
from gateway.stages.payload.json_keys import first_duplicate
from gateway.stages.payload.profiles import FAITHFUL, STRICT, Profile
from gateway.stages.payload.schema import SchemaCheck
from gateway.tools.payloads import IRIS_SHAPED_PUSH, make_payload_bytes

from adv_harness import assert_error_body, backend_count

# IRIS's sample with User_DPID, which aam-segments-strict requires too.
COMPACT = json.dumps({"User_DPID": "20915", **json.loads(IRIS_SHAPED_PUSH)},
                     separators=(",", ":")).encode()
USER = b'{"AAM_UUID":"51880347210963314271938566402175593301","DataPartner_UUID":"CAESEK"'
SEGMENT = b'{"Segment_ID":"7710342","Status":"1","DateTime":"Tue Mar 04 09:29:41 UTC 2025"}'


def _once(body: bytes, old: bytes, new: bytes) -> bytes:
    assert body.count(old) >= 1, old
    return body.replace(old, new, 1)


# (name, body, the path named)
DUPLICATED = [
    ("Users twice", _once(COMPACT, b'"Users":[', b'"Users":[' + USER + b',"Segments":[]}],'
                          b'"Users":['), "Users"),
    ("AAM_UUID twice", _once(COMPACT, b'"AAM_UUID":', b'"AAM_UUID":"1","AAM_UUID":'),
     "Users[0].AAM_UUID"),
    ("Status twice, same value", _once(COMPACT, b'"Status":"1"', b'"Status":"1","Status":"1"'),
     "Users[0].Segments[0].Status"),
    ("an unknown key twice", _once(COMPACT, b'{"User_DPID"', b'{"x":1,"x":2,"User_DPID"'),
     "x"),
    ("unknown and nested", _once(COMPACT, b'"Status":"0"', b'"Status":"0","n":{"a":{"b":1,"b":1}}'),
     "Users[1].Segments[0].n.a.b"),
    # Balanced: a user without DataPartner_UUID gets it from msgspec as null.
    ("balanced by a default", _once(
        _once(COMPACT, b',"DataPartner_UUID":"CAESEKq1-Ztr8wPd2mJxb4LhY0c"', b""),
        b'"Status":"0"', b'"Status":"0","Status":"0"'), "Users[1].Segments[0].Status"),
    # Balanced: \u003a is a colon once decoded, none in the body.
    ("balanced by an escaped colon", _once(
        _once(COMPACT, b'"Client_ID":"310577"', b'"Client_ID":"31\\u003a0577"'),
        b'"User_count":"3"', b'"User_count":"3","User_count":"3"'), "User_count"),
    ("an escaped key name", _once(COMPACT, b'"AAM_UUID":', b'"AAM\\u005fUUID":"1","AAM_UUID":'),
     "Users[0].AAM_UUID"),
    ("inside AAM_Regions", _once(COMPACT, b'"Segments":[',
                                 b'"AAM_Regions":[{"r":1,"r":2}],"Segments":['),
     "Users[0].AAM_Regions[0].r"),
]


@pytest.mark.parametrize("profile", [FAITHFUL, STRICT], ids=lambda p: p.name)
@pytest.mark.parametrize(("name", "body", "path"), DUPLICATED, ids=[d[0] for d in DUPLICATED])
async def test_duplicate_keys_are_refused_with_their_path(
        profile: Profile, name: str, body: bytes, path: str) -> None:
    assert first_duplicate(body) is not None
    with pytest.raises(PayloadViolation) as caught:
        check_whole(profile, body)
    assert str(caught.value) == f"{path}: duplicate key", name
    with pytest.raises(PayloadViolation) as sliced:
        await check_sliced(profile, body)
    assert str(sliced.value) == f"{path}: duplicate key", name


def _large(users: int = 4000) -> bytes:
    return make_payload_bytes(users, random.Random(7))


async def test_a_duplicate_deep_in_a_large_body_is_found_in_its_slice() -> None:
    body = _large()
    assert len(body) > 384 * 1024  # the sliced path
    marker = b'"AAM_UUID":'
    at = -1
    for _ in range(3001):
        at = body.index(marker, at + 1)
    body = body[:at] + b'"AAM_UUID":"1",' + body[at:]
    with pytest.raises(PayloadViolation) as caught:
        await check_sliced(FAITHFUL, body)
    assert str(caught.value) == "Users[3000].AAM_UUID: duplicate key"
    with pytest.raises(PayloadViolation):
        check_whole(FAITHFUL, body)


async def test_a_duplicate_in_one_large_users_segments_is_found() -> None:
    segments = b",".join([SEGMENT] * 4000)
    dup = SEGMENT.replace(b'"Status":"1"', b'"Status":"1","Status":"0"')
    body = (b'{"Users":[' + USER + b',"Segments":[' + segments + b"," + dup + b"]}]}")
    with pytest.raises(PayloadViolation) as caught:
        await check_sliced(FAITHFUL, body)
    assert str(caught.value) == "Users[0].Segments[4000].Status: duplicate key"


@pytest.mark.parametrize("body", [
    IRIS_SHAPED_PUSH, COMPACT, _large(),
    _once(COMPACT, b'"Status":"0"', b'"Status":"0","extra":{"a":1,"b":{"a":1}}'),
    _once(COMPACT, b'"DataPartner_UUID":"CAESEKq1-Ztr8wPd2mJxb4LhY0c"',
          b'"DataPartner_UUID":null'),
    _once(COMPACT, b'"Client_ID":"310577"', b'"Client_ID":"31\\u003a0577"'),
    _once(COMPACT, b'"Segments":[', b'"AAM_Regions":[{"r":1},{"r":1}],"Segments":['),
], ids=["pretty", "compact", "4000 users", "unknown keys", "explicit null", "escaped colon",
        "regions objects"])
async def test_bodies_without_duplicates_pass(body: bytes) -> None:
    assert first_duplicate(body) is None
    check_whole(FAITHFUL, body)
    await check_sliced(FAITHFUL, body)


def test_a_schema_route_refuses_duplicate_keys_too(tmp_path: Path) -> None:
    schema = PayloadSchema(path=tmp_path / "s.json", text=json.dumps({"type": "object"}))
    check = SchemaCheck(schema)
    check(b'{"a":{"b":1,"c":[{"d":1}]}}')
    with pytest.raises(PayloadViolation) as caught:
        check(b'{"a":{"b":1,"c":[{"d":1},{"d":1,"d":2}]}}')
    assert str(caught.value) == "a.c[1].d: duplicate key"


async def test_the_gateway_refuses_a_duplicated_users_and_forwards_nothing(
        adv_gateway: RunningGateway, token: str, session: aiohttp.ClientSession,
        backend: tuple[str, Any]) -> None:
    url = f"https://localhost:{adv_gateway.ports['https']}/segments/aam"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    before = await backend_count(backend[0])
    for body, path in ((DUPLICATED[0][1], "Users"), (DUPLICATED[1][1], "Users[0].AAM_UUID")):
        async with session.post(url, data=body, headers=headers) as answer:
            status, payload = answer.status, await answer.read()
        assert status == 400, payload
        document = assert_error_body((status, payload))
        assert document == {"error": "invalid_payload",
                            "error_description": f"{path}: duplicate key"}
    assert await backend_count(backend[0]) == before
    async with session.post(url, data=COMPACT, headers=headers) as answer:
        assert answer.status == 200


LARGE = _large()


@pytest.mark.parametrize(("name", "body", "path"), [
    ("Users twice, large", _once(LARGE, b'"Users":[', b'"Users":[' + USER
                                 + b',"Segments":[]}],"Users":['), "Users"),
    ("an unknown top-level key twice, large", b'{"x":1,"x":2,' + LARGE[1:], "x"),
    ("inside an unknown large value", _once(LARGE, b'"Users":[', b'"n":[' + b",".join(
        [b'{"a":1}'] * 20000) + b',{"a":1,"a":1}],"Users":['), "n[20000].a"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 60 else "")
async def test_large_bodies_name_the_duplicate_too(name: str, body: bytes, path: str) -> None:
    assert len(body) > 384 * 1024
    with pytest.raises(PayloadViolation) as caught:
        await check_sliced(FAITHFUL, body)
    assert str(caught.value) == f"{path}: duplicate key", name


@pytest.mark.parametrize("body", [
    b'{"x":1,' + LARGE[1:],
    _once(LARGE, b'"Client_ID":"', b'"Client_ID":"\\u003a'),
    _once(LARGE, b'"AAM_Regions":[', b'"AAM_Regions":[' + b",".join([b'{"r":1}'] * 60000)
          + b","),
], ids=["unknown key", "escaped colon", "regions full of keys"])
async def test_large_bodies_without_duplicates_pass(body: bytes) -> None:
    check_whole(FAITHFUL, body)
    await check_sliced(FAITHFUL, body)
