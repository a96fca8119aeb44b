"""A row's `lookup` table and `default`: compiled once per row into the converters the mapper chains.

Forward, a source value is looked up by its key text (`key_text`: YAML keys are text, so 10, 10.0 and "10"
all find the key "10"); the table's values are the target's values, held in canonical form. Backward, the
canonical target value is looked up in the inverse table and the key text is written in the source field's
own type (the key "10" goes back as the integer 10 into an integer field). An empty source value (null or
"") is never looked up: the row's `default`, or null, is written instead.

The default is part of the source's projection, so the link stores it as the source's value: a target that
holds the default while the source stays empty is in sync, and nothing flows back.
"""

from __future__ import annotations

from typing import Any

from mapsync.errors import MappingError
from mapsync.mapping.types import Coerce, field_converter, key_text
from mapsync.spec.entities import property_schema
from mapsync.spec.model import DataflowSpec, LookupUnknown, Row

_MISSING = object()


def forward_converter(spec: DataflowSpec, row: Row, canonical: Coerce) -> Coerce | None:
    """Source value -> canonical target value for a row with a lookup or a default; None for other rows
    (the mapper's plain fast path then stays as it is)."""
    if row.lookup is None and row.default is None:
        return None
    default, table = forward_table(spec, row, canonical)
    if table is None:
        def with_default(value: Any) -> Any:
            result = canonical(value)
            return default if result is None else result

        return with_default
    unknown = _unknown(spec, row, "a key", canonical, prop=row.source)

    def translate(value: Any) -> Any:
        if value is None or value == "":
            return default
        key = value if type(value) is str else key_text(value)  # the key text of text is itself
        found = table.get(key, _MISSING) if key is not None else _MISSING
        return unknown(value) if found is _MISSING else found

    return translate


def forward_table(spec: DataflowSpec, row: Row, canonical: Coerce) -> tuple[Any, dict[str, Any] | None]:
    """(the row's default, its lookup table by key text), both canonical; the table None without a lookup."""
    default = None if row.default is None else canonical(row.default)
    if row.lookup is None:
        return default, None
    return default, {key: canonical(value) for key, value in spec.lookups.get(row.lookup, {}).items()}


def back_converter(spec: DataflowSpec, row: Row, canonical: Coerce, to_source: Coerce) -> Coerce:
    """Target value -> the source field's value for a plain row: canonical, through the inverse table when
    the row has a lookup, then into the source's representation."""
    if row.lookup is None or row.source_path is None:
        return lambda value: to_source(canonical(value))
    prop = property_schema(spec.source_schema, row.source_path) or {}
    to_field = field_converter(prop)  # a key text into the field's type (the key "10" into an integer 10)
    inverse: dict[Any, str] = {}
    for key, value in spec.lookups.get(row.lookup, {}).items():
        inverse.setdefault(canonical(value), key)  # validate refuses a table that is not one-to-one
    unknown = _unknown(spec, row, "a value", lambda value: value, prop=row.target)

    def back(value: Any) -> Any:
        value = canonical(value)
        if value is None:
            return to_source(None)
        found = inverse.get(value, _MISSING)
        return to_source(to_field(unknown(value) if found is _MISSING else found))

    return back


def _unknown(spec: DataflowSpec, row: Row, what: str, keep: Coerce, *, prop: str) -> Coerce:
    """What the row's `lookup_unknown` does with a value the table does not hold."""
    if row.lookup_unknown == LookupUnknown.KEEP:
        return keep
    if row.lookup_unknown == LookupUnknown.NULL:
        return lambda value: None

    def fail(value: Any) -> Any:
        raise MappingError(f"{_shown(value)} is not {what} of lookup table {row.lookup!r} (row at "
                           f"{spec.file}:{row.line}, lookup_unknown: fail)", prop=prop, value=value)

    return fail


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
