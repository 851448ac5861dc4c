"""A large body on a ``payload: {schema: FILE}`` route checked a slice of its big array at a
time, when the schema allows it (docs/configuration.md "Payload profiles", docs/aep.md).

An Adobe Experience Platform batch is ``{"profiles": [...]}`` with up to 10,000 profiles,
several MB. Decoded whole for the validator it cost ~40 ms on the loop at once and Python
objects of ~5.7 times the body (21 MB for a 3.7 MB batch, measured), where the ``aam-segments``
check of a 10,000-user batch yields between 64 KiB slices and keeps little besides the body.
``SlicedSchemaCheck`` gives a schema route the same shape of cost: the root object is
decoded with the big array's items as raw views (msgspec ``Raw``, no copy), checked against
the schema with that array's ``items`` left out (``minItems``/``maxItems`` still see its
length), then the items are decoded and checked ~64 KiB at a time against
``{"type": "array", "items": ...}``, the loop free between slices.

It applies only when that is the same check: the root is an object schema whose keywords
look at each property alone (no ``if``, ``allOf``, ``unevaluatedProperties``, ...), one
property is an array whose keywords are ``type``, ``items``, ``minItems``, ``maxItems`` (and
annotations), and every ``$ref`` points into ``$defs``/``definitions``, which the item check
carries. Any other schema, or a body whose root or array is not of that shape, is checked
whole as before. The first problem may be named differently when a body has several (the
root's before the items'); whether a body passes never differs
(``tests/unit/stages/test_schema_slices.py`` compares both on mutated batches).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

import msgspec

from gateway.config import PayloadSchema
from gateway.stages.payload.errors import PayloadViolation, check_utf8_sliced, decode_error
from gateway.stages.payload.json_keys import raw_slices
from gateway.stages.payload.schema import SchemaCheck

__all__ = ["SLICE_BYTES", "SlicedSchemaCheck"]

SLICE_BYTES: Final = 64 * 1024
_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "default",
                          "deprecated", "readOnly", "writeOnly"})
_ROOT_KEYWORDS = _ANNOTATIONS | {"$schema", "$id", "$defs", "definitions", "type", "required",
                                 "properties", "additionalProperties", "minProperties",
                                 "maxProperties", "propertyNames"}
_ARRAY_KEYWORDS = _ANNOTATIONS | {"type", "items", "minItems", "maxItems"}
_LOCAL_REFS = ("#/$defs/", "#/definitions/")
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
_ROOT: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ITEMS: Final = msgspec.json.Decoder(list[msgspec.Raw])
_ANY: Final = msgspec.json.Decoder()


class _NotSliceable(Exception):
    """The body's root or array is not of the shape the slices need: check it whole."""


def _refs_local(node: Any) -> bool:
    """Every ``$ref`` under ``node`` points into ``$defs``/``definitions``; no dynamic ref."""
    if isinstance(node, dict):
        if "$dynamicRef" in node or "$recursiveRef" in node:
            return False
        ref = node.get("$ref")
        if ref is not None and not (isinstance(ref, str) and ref.startswith(_LOCAL_REFS)):
            return False
        return all(_refs_local(value) for value in node.values())
    if isinstance(node, list):
        return all(_refs_local(value) for value in node)
    return True


def _array_property(document: Any) -> str | None:
    """The name of the property the slices may take, or None when the schema has none."""
    if not isinstance(document, dict) or not set(document) <= _ROOT_KEYWORDS:
        return None
    if document.get("type", "object") != "object" or not _refs_local(document):
        return None
    properties = document.get("properties")
    if not isinstance(properties, dict):
        return None
    for name, sub in properties.items():
        if (isinstance(sub, dict) and sub.get("type") == "array" and "items" in sub
                and set(sub) <= _ARRAY_KEYWORDS):
            return str(name)
    return None


class SlicedSchemaCheck:
    """The slice-at-a-time check of one schema; ``build`` says whether the schema allows it."""

    __slots__ = ("_items", "_name", "_root", "_whole")

    def __init__(self, document: dict[str, Any], name: str, schema: PayloadSchema,
                 whole: SchemaCheck) -> None:
        array = document["properties"][name]
        root = {**document, "properties": {
            **document["properties"], name: {k: v for k, v in array.items() if k != "items"}}}
        items: dict[str, Any] = {k: document[k] for k in ("$schema", "$id", "$defs",
                                                          "definitions") if k in document}
        items.update(type="array", items=array["items"])
        self._name = name
        self._root = SchemaCheck(PayloadSchema(path=schema.path, text=json.dumps(root)))
        self._items = SchemaCheck(PayloadSchema(path=schema.path, text=json.dumps(items)))
        self._whole = whole

    @classmethod
    def build(cls, schema: PayloadSchema, whole: SchemaCheck) -> SlicedSchemaCheck | None:
        """The sliced check of ``schema``, or None when only a whole check is the same."""
        document = json.loads(schema.text)
        name = _array_property(document)
        return None if name is None else cls(document, name, schema, whole)

    async def __call__(self, body: bytes) -> None:
        """Raise ``PayloadViolation`` unless ``body`` passes the schema."""
        await check_utf8_sliced(body, 4 * SLICE_BYTES)
        try:
            top = _decode(_ROOT, body)
            await asyncio.sleep(0)  # each of these two skims the whole body: ~2.5 ms a 3.7 MB
            raw = top.get(self._name)
            raws: list[msgspec.Raw] = [] if raw is None else _decode(_ITEMS, raw)
        except _NotSliceable:
            self._whole.check_json(body)  # not an object, or no array: the whole check says why
            return
        await asyncio.sleep(0)
        try:
            document = {key: _ANY.decode(value) for key, value in top.items()
                        if key != self._name}
        except _DECODE_ERRORS as exc:
            raise decode_error(exc) from None
        if raw is not None:
            document[self._name] = [None] * len(raws)  # its length, for minItems/maxItems
        self._root.check_document(document)
        for start, end in raw_slices(raws, SLICE_BYTES):
            chunk = b"[" + b",".join(raws[start:end]) + b"]"
            try:
                self._items.check_document(_ANY.decode(chunk))
            except PayloadViolation as violation:
                raise _placed(violation, self._name, start) from None
            await asyncio.sleep(0)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | msgspec.Raw) -> Any:
    """``data`` decoded as the skeleton ``decoder`` reads; _NotSliceable when the JSON is
    well formed but not of that shape."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError:
        raise _NotSliceable from None
    except _DECODE_ERRORS as exc:
        raise decode_error(exc) from None


def _placed(violation: PayloadViolation, name: str, base: int) -> PayloadViolation:
    """A violation found in a slice (``[2].status``) where it is in the body
    (``profiles[base + 2].status``)."""
    path = violation.path
    index, _, rest = path[1:].partition("]")
    where = f"{name}[{base + int(index)}]{rest}" if path.startswith("[") else name
    rule = violation.text.removeprefix(f"{path}: ")
    return PayloadViolation(where, rule, violation.reason)
