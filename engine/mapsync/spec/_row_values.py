"""The checks of the `lookups:` section and of a row's `lookup`, `lookup_unknown` and `default` keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema

from mapsync.errors import MappingError
from mapsync.mapping.types import TYPE_NAMES, canonical_converter
from mapsync.spec._yaml import KeyPath
from mapsync.spec.model import LookupUnknown, _member

Problem = tuple[KeyPath, str]
_UTC = ZoneInfo("UTC")  # a date's zone only matters for datetimes read as days, never for a check of fit


def lookup_tables(raw: Any) -> dict[str, dict[str, Any]]:
    """The `lookups:` section as read. Its keys are text: the YAML reader refuses a bare number or boolean
    as a key (`10:`), and asks for it quoted ("10"), so every key is the key text of a value it matches."""
    if not isinstance(raw, dict):
        return {}
    return {str(name): dict(entries) for name, entries in raw.items() if isinstance(entries, dict)}


def row_value_problems(raw: dict[str, Any], at: KeyPath, *, kind: str, direction: str, plain: bool,
                       tables: dict[str, dict[str, Any]], prop: dict[str, Any] | None,
                       entity: str) -> Iterator[Problem]:
    """What is wrong with a row's `lookup`, `lookup_unknown` and `default` (nothing when it has none)."""
    if "lookup_unknown" in raw and "lookup" not in raw:
        yield (*at, "lookup_unknown"), "`lookup_unknown` says what a `lookup` does with an unknown value; this " \
                                       "row has no `lookup`: remove it"
    if isinstance(raw.get("lookup"), str):
        yield from _lookup_problems(raw["lookup"], (*at, "lookup"), kind=kind, direction=direction, plain=plain,
                                    tables=tables, prop=prop, entity=entity)
    if "default" in raw and raw["default"] is not None:
        yield from _default_problems(raw["default"], (*at, "default"), kind=kind, direction=direction, prop=prop,
                                     entity=entity)


def _lookup_problems(name: str, at: KeyPath, *, kind: str, direction: str, plain: bool,
                     tables: dict[str, dict[str, Any]], prop: dict[str, Any] | None,
                     entity: str) -> Iterator[Problem]:
    if kind == "reference":
        yield at, "a reference row translates its id through the links of `dataflow`, not a `lookup`: remove it"
        return
    if name not in tables:
        known = ", ".join(sorted(tables)) or "none: add a top-level `lookups:` section"
        yield at, f"unknown lookup table {name!r} (known: {known})"
        return
    if not plain and direction != "forward":
        yield at, ("a `lookup` on a computed source expression works forward only: set `direction: forward` "
                   "(only a plain field path goes back through the inverse table)")
    if kind not in TYPE_NAMES:
        return  # the schema check said so
    canonical = canonical_converter(kind, _UTC)
    values: dict[Any, list[str]] = {}
    for key, value in tables[name].items():
        if not _scalar(value) and value is not None:
            continue  # the schema check said so
        why = _misfit(value, kind, prop, entity)
        if why:
            yield at, f"lookup table {name!r}, key {key!r}: {why}"
            continue
        values.setdefault(canonical(value), []).append(key)
    if direction in {"both", "reverse"}:
        for value, keys in values.items():
            if len(keys) > 1:
                yield at, (f"lookup table {name!r} is not one-to-one: the keys {_listed(keys)} all give {value!r}, "
                           f"and this row also flows back (direction: {direction}), where {value!r} would have "
                           "to go back to one key: make the table one-to-one, or set `direction: forward`")


def _default_problems(value: Any, at: KeyPath, *, kind: str, direction: str, prop: dict[str, Any] | None,
                      entity: str) -> Iterator[Problem]:
    if kind == "reference":
        yield at, "a reference row writes the id of a linked record, never a `default`: remove it"
        return
    if direction == "reverse":
        yield at, ("a `default` is written to the target when the source value is empty, and this row only "
                   "flows back (direction: reverse): remove it")
        return
    if value == "":
        yield at, "an empty `default` is no default (an empty source value already writes null): remove it"
        return
    why = _misfit(value, kind, prop, entity) if kind in TYPE_NAMES and _scalar(value) else None
    if why:
        yield at, f"the default {why}"


def _misfit(value: Any, kind: str, prop: dict[str, Any] | None, entity: str) -> str | None:
    """Why a value written to the target does not fit the row's type or the target property, or None."""
    try:
        canonical = canonical_converter(kind, _UTC)(value)
    except MappingError as exc:
        return f"{value!r} does not fit type {kind}: {exc}"
    if prop is None or canonical is None:
        return None
    for error in jsonschema.Draft202012Validator(prop).iter_errors(canonical):
        return f"{value!r} does not fit {entity}: {error.message}"
    return None


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _listed(items: list[str]) -> str:
    quoted = [repr(item) for item in items]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def lookup_unknown_of(raw: dict[str, Any]) -> LookupUnknown:
    # `lookup_unknown: null` is YAML's null, not the text "null": both mean "write null".
    value = raw.get("lookup_unknown", "fail")
    return _member(LookupUnknown, "null" if value is None else str(value))
