"""Duplicate JSON object keys are refused (docs/security.md, "Payloads"): RFC 8259 §4 says
names "SHOULD be unique" and that with duplicates "the behavior of software that receives
such an object is unpredictable": msgspec keeps the last ``Users``, another parser the
first, so a checked document could reach the backend meaning something never checked.

An exact check for every body would cost more than the validation itself, so the hot path
runs one only when a cheap count cannot rule duplicates out. That count
(``keys_may_repeat``, through ``check_unique_keys``) uses what the payload stage decoded
anyway: re-encoded by msgspec, a decoded document holds each key it kept once,
with every string re-written but no colon added or lost (a ``:`` is never escaped, and
``\\u003a`` in the body sends the document to the exact check). So, outside strings, the
body's colons are its keys and the re-encoding's colons are the keys kept: equal counts mean
no key was dropped. A field msgspec fills with a default the body left out (a ``None``, not
an omitted ``UNSET``) adds ``"name":default`` to the re-encoding, counted and taken off.
Any other difference (a duplicate, or a key the profile's types skip) goes to the exact
check (``refuse_duplicates``): msgspec decodes the document into plain values a piece of
at most ``PIECE_BYTES`` at a time, where the same count is exact (nothing is skipped and
no default filled; a large object's own keys are counted against its verbatim values),
and ``first_duplicate`` scans only a piece that holds a duplicate, to name its path.
``msgspec.Raw`` values are re-encoded verbatim, so the count does not see keys inside
them; the caller checks those itself.
What each costs is measured in docs/performance.md ("Duplicate keys").
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterator, Sequence
from functools import lru_cache
from typing import Any, Final, NoReturn, cast

import msgspec
from msgspec import Raw, inspect

from gateway.stages.payload.errors import PayloadViolation

__all__ = ["PIECE_BYTES", "check_unique_keys", "first_duplicate", "keys_may_repeat",
           "refuse_duplicates"]

_ENCODER: Final = msgspec.json.Encoder()
_ANY: Final = msgspec.json.Decoder()
_ITEMS: Final = msgspec.json.Decoder(list[Raw])
_MEMBERS: Final = msgspec.json.Decoder(dict[str, Raw])
# The exact check decodes at most this much at once: its memory and loop time stay those
# of a slice of the sliced check, whatever the document's size.
PIECE_BYTES: Final = 64 * 1024


# Tokens of an already valid JSON document the exact scan needs: strings (a key when a
# colon follows), brackets and commas; numbers, literals and whitespace are skipped in C.
_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?|[{}\[\],]')


def first_duplicate(data: bytes) -> list[str | int] | None:
    """The path of the first duplicated key of ``data`` (one valid JSON document), by a scan
    that keeps only the open containers (a key set per object, an index per array). About
    0.5 us per token: the exact check runs it on pieces of at most ``PIECE_BYTES``."""
    keys: list[set[str] | None] = []  # per open container: its keys, None for an array
    at: list[str | int] = []  # per open container: the key or index of its current member
    for token in _TOKEN.finditer(data):
        text = token.group()
        first = text[0]
        if first == 0x22:  # a string
            mine = keys[-1] if keys else None
            if token.group(1) is None or mine is None:
                continue
            name = text[: text.rindex(b'"') + 1]
            key = json.loads(name) if b"\\" in name else name[1:-1].decode()
            if key in mine:
                return [*at[:-1], key]
            mine.add(key)
            at[-1] = key
        elif first in b"{[":
            keys.append(set() if first == 0x7B else None)
            at.append(0)
        elif first == 0x2C:  # a comma: the next element of an array
            if keys and keys[-1] is None:
                at[-1] = int(at[-1]) + 1
        elif keys:
            keys.pop()
            at.pop()
    return None


def _place(parts: list[str | int], within: str, base: int) -> str:
    text = within
    for i, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part + base if i == 0 else part}]"
        else:
            text += f".{part}" if text else part
    return text


def _counts_agree(data: bytes, decoded: Any, added_members: tuple[bytes, ...] = ()) -> bool:
    """The count test of the module's docstring: True when no key of ``data`` was dropped
    in ``decoded``."""
    encoded = _ENCODER.encode(decoded)
    added = 0
    for member in added_members:
        added += encoded.count(member)
    return (data.count(b":") + added == encoded.count(b":")
            and not (b"\\" in data and (b"\\u003a" in data or b"\\u003A" in data)))


def _raise(parts: list[str | int], within: str, base: int) -> NoReturn:
    raise PayloadViolation(_place(parts, within, base), "duplicate key", "malformed")


def refuse_duplicates(data: bytes, *, within: str = "", base: int = 0,
                      skip: tuple[str, ...] = ()) -> None:
    """Raise ``PayloadViolation`` naming a duplicated key of ``data`` (one valid JSON
    document), if it has one. ``within`` and ``base`` place a slice: ``[..]`` of ``Users``
    from index ``base``. Bounded in time and memory whatever ``data`` is: pieces of at most
    ``PIECE_BYTES`` are decoded by msgspec and counted (the exact form of the count test,
    nothing skipped); only a piece that holds a duplicate is scanned to name it. The values
    of a large object's members named in ``skip`` are left to the caller."""
    head = data.lstrip()[:1]
    if len(data) <= PIECE_BYTES or head not in (b"[", b"{"):
        _check_piece(data, within, base)
        return
    if head == b"[":
        items: list[Raw] = _ITEMS.decode(data)
        for start, end in raw_slices(items, PIECE_BYTES):
            if end == start + 1:
                refuse_duplicates(bytes(items[start]), within=_place([start], within, base))
            else:
                _check_piece(b"[" + b",".join(items[start:end]) + b"]", within, base + start)
        return
    members: dict[str, Raw] = _MEMBERS.decode(data)
    if any(":" in name for name in members):  # a key holding a colon: only a scan can tell
        parts = first_duplicate(data)
        if parts is not None:
            _raise(parts, within, 0)
        return
    # This object's own keys: each is one colon outside its (verbatim) values.
    if data.count(b":") != len(members) + sum(bytes(v).count(b":") for v in members.values()):
        _raise(_repeated_member(data, members), within, 0)
    for name, value in members.items():
        if len(value) > 2 and name not in skip:  # "{}" and "[]" hold no key
            refuse_duplicates(bytes(value), within=_place([name], within, 0))


def _check_piece(data: bytes, within: str, base: int) -> None:
    if not _counts_agree(data, _ANY.decode(data)):
        parts = first_duplicate(data)
        if parts is not None:
            _raise(parts, within, base)


def _repeated_member(data: bytes, members: dict[str, Raw]) -> list[str | int]:
    """Which of a large object's own keys is repeated, found by counting ``"name":``
    in the object and in its values; [] (the object itself) when that cannot tell."""
    if b"\\" in data or len(members) > 64:
        return []
    values = [bytes(value) for value in members.values()]
    for name in members:
        token = b'"' + name.encode() + b'":'
        if data.count(token) > 1 + sum(value.count(token) for value in values):
            return [name]
    return []


def raw_slices(raws: Sequence[Raw], size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive runs of ``raws`` holding about ``size`` bytes each."""
    start, total = 0, 0
    for index, raw in enumerate(raws):
        if index > start and total + len(raw) > size:
            yield start, index
            start, total = index, 0
        total += len(raw)
    if start < len(raws):
        yield start, len(raws)


@lru_cache(maxsize=64)
def _default_members(decoded_type: Any) -> tuple[bytes, ...]:
    """``"name":default`` of each struct field, at any depth of ``decoded_type``, that
    msgspec fills in when the body leaves it out and writes back when re-encoding."""
    found: set[bytes] = set()
    pending = [inspect.type_info(decoded_type)]
    seen: set[int] = set()
    while pending:
        info = pending.pop()
        if id(info) in seen:
            continue
        seen.add(id(info))
        if isinstance(info, inspect.StructType):
            for field in info.fields:
                if field.default is not msgspec.NODEFAULT and field.default is not msgspec.UNSET:
                    found.add(b'"' + field.encode_name.encode() + b'":'
                              + _ENCODER.encode(field.default))
                pending.append(field.type)
        elif isinstance(info, inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, inspect.Metadata):
            pending.append(info.type)
        elif isinstance(info, (inspect.ListType, inspect.SetType, inspect.FrozenSetType,
                               inspect.VarTupleType)):
            pending.append(info.item_type)
        elif isinstance(info, inspect.DictType):
            pending.append(info.value_type)
    return tuple(sorted(found))


def keys_may_repeat(data: bytes, decoded: Any, decoder: msgspec.json.Decoder[Any]) -> bool:
    """False when ``data``, which ``decoder`` decoded into ``decoded``, surely holds no
    duplicate key outside its ``Raw`` values; True when only the exact check can tell."""
    return not _counts_agree(data, decoded, _default_members(cast(Hashable, decoder.type)))


def check_unique_keys(data: bytes, decoded: Any, decoder: msgspec.json.Decoder[Any], *,
                      within: str = "", base: int = 0, skip: tuple[str, ...] = ()) -> None:
    """Raise ``PayloadViolation`` if ``data``, which ``decoder`` decoded into ``decoded``,
    holds a duplicate key outside its ``Raw`` values (see the module's docstring)."""
    if keys_may_repeat(data, decoded, decoder):
        refuse_duplicates(data, within=within, base=base, skip=skip)
