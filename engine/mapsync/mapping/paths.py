"""Dotted property paths (postal_address.line1): read, write, and plain-path detection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import jmespath
from jmespath.exceptions import JMESPathError

Getter = Callable[[Mapping[str, Any]], Any]


def split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def get_path(record: Mapping[str, Any] | None, parts: tuple[str, ...]) -> Any:
    value: Any = record
    for part in parts:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def set_path(record: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    """Set a nested value, creating (or replacing a null) parent objects on the way."""
    node = record
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def plain_path(expression: str) -> tuple[str, ...] | None:
    """The field path an expression is, if it is nothing more than `a` or `a.b.c`; else None."""
    try:
        ast = jmespath.compile(expression).parsed
    except JMESPathError:
        return None
    return _fields_of(cast(dict[str, Any], ast))


def _fields_of(node: dict[str, Any]) -> tuple[str, ...] | None:
    kind = node.get("type")
    if kind == "field":
        return (str(node["value"]),)
    if kind == "subexpression":
        parts: list[str] = []
        for child in node["children"]:
            sub = _fields_of(child)
            if sub is None:
                return None
            parts.extend(sub)
        return tuple(parts)
    return None


def field_names(expression: str) -> set[str]:
    """Every top-level field an expression reads from its record (for checking against a schema)."""
    ast = jmespath.compile(expression).parsed
    names: set[str] = set()
    _collect_root_fields(cast(dict[str, Any], ast), names)
    return names


def _collect_root_fields(node: dict[str, Any], names: set[str]) -> None:
    # A field is read from the record itself when it is not the right-hand side of a subexpression,
    # projection or filter (those read from values the left-hand side produced).
    kind = node.get("type")
    children: list[dict[str, Any]] = node.get("children", [])
    if kind == "field":
        names.add(str(node["value"]))
    elif kind in {"subexpression", "index_expression", "projection", "value_projection",
                  "filter_projection", "flatten"}:
        if children:
            _collect_root_fields(children[0], names)
    else:
        for child in children:
            if isinstance(child, dict):
                _collect_root_fields(child, names)


def make_getter(expression: str) -> Getter:
    """Compile once: plain paths get a direct dict walk (fast), anything else a compiled JMESPath."""
    parts = plain_path(expression)
    if parts is not None and len(parts) == 1:
        key = parts[0]
        return lambda record: record.get(key)
    if parts is not None:
        return lambda record: get_path(record, parts)
    compiled = jmespath.compile(expression)
    return compiled.search
