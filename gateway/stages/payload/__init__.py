"""The payload stage: a request body checked against its route's ``payload`` profile
(docs/configuration.md ``payload``, docs/adobe.md).

Modules:

* ``check``: ``payload_check(route)``, one route's check built once per configuration.
* ``profiles``: the Adobe profiles' msgspec types (``aam-segments``, ``-strict``).
* ``aam``: those profiles checked in one call, or a slice at a time for large bodies.
* ``schema``: ``payload: {schema: FILE}`` routes, checked by jsonschema-rs.
* ``schema_slices``: a schema route's large batch checked a slice of its big array at a time.
* ``errors``: ``PayloadViolation`` and its wording (a JSON path, never a value).
* ``json_keys``: duplicate keys refused at any depth, with their path.
"""

from __future__ import annotations

from gateway.stages.payload.check import (
    LARGE_BODY_BYTES,
    PayloadCheck,
    PayloadViolation,
    payload_check,
    validate_aam_segments,
    validate_aam_segments_strict,
    validate_json,
)

__all__ = ["LARGE_BODY_BYTES", "PayloadCheck", "PayloadViolation", "payload_check",
           "validate_aam_segments", "validate_aam_segments_strict", "validate_json"]
