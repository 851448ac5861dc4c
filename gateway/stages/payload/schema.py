"""``payload: {schema: FILE}``: a JSON Schema (draft 2020-12 unless its ``$schema`` names
another) for a destination whose format is the partner's own (docs/configuration.md).

The schema is compiled once per configuration by jsonschema-rs, a Rust validator (see
``bench/micro_payload.py --schema`` for how it compares with the pure-Python ``jsonschema``);
it is compiled offline, so a ``$ref`` to another document is never fetched. The body is
decoded by msgspec into Python values, which the validator walks: unlike the Adobe
profiles, a schema may look at anything, so nothing can be skipped. A duplicated key is
refused before the schema runs (the schema would see only the copy msgspec kept). The
description names the JSON path and the keyword that failed, never a value.
"""

from __future__ import annotations

import json
from typing import Any, Final

import jsonschema_rs
import msgspec

from gateway.config import PayloadSchema
from gateway.stages.payload.errors import ROOT, PayloadViolation, check_utf8, decode_error
from gateway.stages.payload.json_keys import keys_may_repeat, refuse_duplicates

__all__ = ["SchemaCheck"]

_DECODE_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
_DECODER: Final = msgspec.json.Decoder()


def json_path(parts: list[str | int]) -> str:
    """``["Users", 0, "Status"]`` as ``Users[0].Status``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or ROOT


class SchemaCheck:
    """The check of one route's schema; ``__call__`` raises ``PayloadViolation``."""

    __slots__ = ("_validator",)

    def __init__(self, schema: PayloadSchema) -> None:
        # The loader compiled it already, so this cannot fail on a file check-config passed.
        self._validator = jsonschema_rs.validator_for(json.loads(schema.text), offline=True)

    def __call__(self, body: bytes) -> None:
        check_utf8(body)
        self.check_json(body)

    def check_json(self, body: bytes) -> None:
        """The check of a body already known to be UTF-8."""
        try:
            document = _DECODER.decode(body)
        except _DECODE_ERRORS as exc:
            raise decode_error(exc) from None
        if keys_may_repeat(body, document, _DECODER):  # json_keys.py: a schema sees one
            refuse_duplicates(body)
        self.check_document(document)

    def check_document(self, document: Any) -> None:
        error = next(self._validator.iter_errors(document), None)
        if error is None:
            return
        kind = error.kind
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            # The property's name comes from the schema, not from the body.
            path = json_path([*error.instance_path, str(kind.property)])
            raise PayloadViolation(path, "is required", "missing_field")
        keyword = str(error.schema_path[-1]) if error.schema_path else "schema"
        raise PayloadViolation(json_path(list(error.instance_path)),
                               f"fails the schema's {keyword}", "invalid_value")
