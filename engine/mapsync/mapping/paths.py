"""Dotted property paths (postal_address.line1): read, write, and plain-path detection; the getters of
mapping expressions, which evaluate with mapsync's functions and fail naming the row and the record."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import jmespath
from jmespath.exceptions import ArityError, JMESPathError, JMESPathTypeError, VariadictArityError

from mapsync.errors import MappingError
from mapsync.mapping.compiler import compile_expression
from mapsync.mapping.functions import OPTIONS

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
    """Compile once: plain paths get a direct dict walk (fast), other expressions Python closures (see
    compiler.py), and what those leave out jmespath's own search."""
    parts = plain_path(expression)
    if parts is not None and len(parts) == 1:
        return operator.methodcaller("get", parts[0])  # record.get(key), without a Python frame
    if parts is not None:
        return lambda record: get_path(record, parts)
    closure = compile_expression(expression)
    if closure is not None:
        return closure
    compiled = jmespath.compile(expression)
    return functools.partial(compiled.search, options=OPTIONS)  # a C-level call: no extra Python frame


def make_predicate(expression: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile once a filter (`where`, `target_where`): whether the expression is truthy on a record, in
    JMESPath's sense (not null, false, "", [] or {}; 0 is true). It raises what make_getter's getter raises."""
    read, parts = make_getter(expression), plain_path(expression)
    key = parts[0] if parts is not None and len(parts) == 1 else None

    def holds(record: Mapping[str, Any]) -> bool:
        value = record.get(key) if key is not None else read(record)  # a plain field: read in place
        if value is True:
            return True
        if value is None or value is False:
            return False
        return len(value) > 0 if isinstance(value, _SIZED) else True

    return holds


_SIZED = (str, list, dict)


class ExpressionError(MappingError):
    """An expression that failed on a record: names the row (file:line), the expression and the record,
    never a bare JMESPath message. `prop` stays the expression, as for any MappingError of a row."""

    def __init__(self, origin: str, expression: str, record: str, reason: str) -> None:
        shown = repr(expression) if len(expression) <= 60 else repr(expression[:60]) + "..."
        super().__init__(f"{origin}: cannot evaluate {shown} on {record}: {reason}")
        self.prop = expression


def make_evaluator(expression: str, origin: str, entity: str = "", key: str = "id") -> Getter:
    """make_getter for a row's expression: a failure raises ExpressionError naming `origin` (file:line)
    and the record (`entity` and the value of its `key` field). jmespath itself lets a few odd values
    escape as bare Python errors (`a > b` on a number and a string: TypeError; ceil of infinity:
    OverflowError); they are caught too. A plain path is a dict walk: nothing to guard, kept direct."""
    getter = make_getter(expression)
    if plain_path(expression) is not None:
        return getter

    def evaluate(record: Mapping[str, Any]) -> Any:
        try:
            return getter(record)
        except (JMESPathError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            record_id = record.get(key) if isinstance(record, Mapping) else None
            raise ExpressionError(origin, expression, _record_name(entity, record_id), explain(exc)) from None

    return evaluate


def _record_name(entity: str, record_id: Any) -> str:
    what = f"{entity} record" if entity else "the record"
    return f"{what} {record_id!r}" if record_id is not None else f"{what} (no id)"


_JSON_TYPES = {"str": "a string", "int": "a number", "float": "a number", "bool": "a boolean",
               "NoneType": "null", "list": "an array", "dict": "an object", "null": "null", "string": "a string",
               "number": "a number", "boolean": "a boolean", "array": "an array", "object": "an object"}
_COMPARISON = re.compile(r"'(\S+)' not supported between instances of '(\w+)' and '(\w+)'")


def explain(exc: BaseException) -> str:
    """Why an expression failed, in the words of a mapping (JSON types, the function's name)."""
    if isinstance(exc, JMESPathTypeError):
        wanted = " or ".join(t.replace("array-", "array of ") for t in exc.expected_types)
        got = _JSON_TYPES.get(exc.actual_type, exc.actual_type)
        return f"{exc.function_name}() cannot take {got} there (it takes {wanted})"
    if isinstance(exc, ArityError):
        least = "at least " if isinstance(exc, VariadictArityError) else ""
        return (f"{exc.function_name}() takes {least}{exc.expected_arity} argument"
                f"{'' if exc.expected_arity == 1 else 's'}, not {exc.actual_arity}")
    if isinstance(exc, RecursionError):
        return "the value is nested too deeply"
    match = _COMPARISON.search(str(exc)) if isinstance(exc, TypeError) else None
    if match:
        operator, left, right = match.groups()
        return f"{operator} cannot compare {_JSON_TYPES.get(left, left)} with {_JSON_TYPES.get(right, right)}"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
