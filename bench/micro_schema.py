"""Micro-benchmark of ``payload: {schema: FILE}``: which JSON Schema validator the gateway uses.

Not a test. Times, on the same decoded documents, a check of the ``aam-segments`` shape
written as a JSON Schema (draft 2020-12) by:

- jsonschema-rs (Rust, compiled once; what ``stages/payload/schema.py`` uses);
- jsonschema (the pure-Python reference implementation), a compiled ``Draft202012Validator``;
- fastjsonschema (generates Python code), with the same schema as draft-07: it has no
  2020-12 support, so it is listed for its speed only.

Then the whole check the gateway runs (msgspec decode + jsonschema-rs). Medians of many
runs, in microseconds. The libraries other than jsonschema-rs are optional: a row is
skipped when one is not installed (``pip install jsonschema fastjsonschema``).

    python bench/micro_schema.py
    python bench/micro_schema.py --users 1 10 1000 --runs 300
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jsonschema_rs
import msgspec

from gateway.config import PayloadSchema
from gateway.stages.payload.schema import SchemaCheck
from gateway.tools.payloads import make_payload_bytes

_INT = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}]}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["Users"],
    "properties": {
        "User_DPID": _INT, "User_count": _INT, "AAM_Destination_Id": _INT,
        "Client_ID": {"type": ["string", "integer"]},
        "ProcessTime": {"type": "string"},
        "Users": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["AAM_UUID", "Segments"],
            "properties": {
                "AAM_UUID": {"type": "string", "minLength": 1},
                "DataPartner_UUID": {"type": ["string", "null"]},
                "AAM_Regions": {"type": ["array", "null"]},
                "Segments": {"type": "array", "items": {
                    "type": "object", "required": ["Segment_ID", "Status"],
                    "properties": {
                        "Segment_ID": {"anyOf": [{"type": "string", "minLength": 1},
                                                 {"type": "integer"}]},
                        "Status": {"enum": ["1", "0", 1, 0]},
                        "DateTime": {"type": "string"}}}}}}}},
}


def median_us(check: Callable[[], Any], runs: int) -> float:
    for _ in range(3):
        check()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        check()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def validators() -> dict[str, Callable[[Any], Any]]:
    found: dict[str, Callable[[Any], Any]] = {
        "jsonschema-rs": jsonschema_rs.validator_for(SCHEMA, offline=True).is_valid}
    try:
        import jsonschema

        found["jsonschema (Python)"] = jsonschema.Draft202012Validator(SCHEMA).is_valid
    except ImportError:
        pass
    try:
        import fastjsonschema

        draft7 = {**SCHEMA, "$schema": "http://json-schema.org/draft-07/schema#"}
        found["fastjsonschema (draft-07)"] = fastjsonschema.compile(draft7)
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 10, 1000])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    check = SchemaCheck(PayloadSchema(path=Path("bench"), text=json.dumps(SCHEMA)))
    found = validators()
    print(f"{'users':>6} {'bytes':>8} {'validator':<28} {'median us':>10}")
    for users in args.users:
        body = make_payload_bytes(users, random.Random(users))
        document = msgspec.json.decode(body)
        for name, is_valid in found.items():
            assert is_valid(document) is not False, name
            print(f"{users:>6} {len(body):>8} {name:<28} "
                  f"{median_us(lambda v=is_valid, d=document: v(d), args.runs):>10.1f}")
        print(f"{users:>6} {len(body):>8} {'gateway check (decode+rs)':<28} "
              f"{median_us(lambda b=body: check(b), args.runs):>10.1f}")


if __name__ == "__main__":
    main()
