"""Request bodies checked with jsonschema against the entity schemas shipped in `mapsync.schemas`.

The schemas are read by the one loader (`mapsync.spec.entities`); jsonschema finds the problems and this
module only words them the way the contracts answer them (`{"field": ..., "message": ...}`): one problem
per field, unknown names and missing names one by one, in the order of the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from mapsync.errors import FieldError
from mapsync.sandbox._time import parse_aware_datetime
from mapsync.spec.entities import entity_schema

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FORMAT_MESSAGES = {
    "date": "must be a date YYYY-MM-DD",
    "date-time": "must be an ISO 8601 date-time with a zone offset",
}


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_aware_datetime(value: object) -> bool:
    return not isinstance(value, str) or parse_aware_datetime(value) is not None


# Our own checkers: jsonschema's date-time needs an extra package, and the emulators accept what
# `datetime.fromisoformat` reads as long as it carries a zone.
_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date")(_is_date)
_FORMATS.checks("date-time")(_is_aware_datetime)


def _whole_pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """`pattern`, matched against the whole string: `$` alone would let a trailing newline through."""
    if isinstance(instance, str) and not re.fullmatch(pattern.removeprefix("^").removesuffix("$"), instance):
        yield ValidationError(f"must match the pattern {pattern}")


# types-jsonschema leaves `extend` untyped.
_Validator = validators.extend(Draft202012Validator, {"pattern": _whole_pattern})  # type: ignore[no-untyped-call]


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    for kind, name in ((float, "number"), (str, "string"), (dict, "object"), (list, "array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


class EntitySchema:
    """One entity's schema: its property names in schema order, their types, the server-set names, and
    the check of a request body."""

    def __init__(self, system: str, entity: str) -> None:
        raw = entity_schema(system, entity)
        if raw is None:
            raise KeyError(f"no {system} schema for {entity!r}")
        self.properties: dict[str, dict[str, Any]] = dict(raw.get("properties", {}))
        self.server_fields = frozenset(raw.get("x-server-fields", ()))
        self._validator = _Validator(raw, format_checker=_FORMATS)

    def types(self, name: str) -> tuple[str, ...]:
        raw_type = self.properties[name].get("type", "string")
        return (raw_type,) if isinstance(raw_type, str) else tuple(raw_type)

    def problems(self, body: dict[str, Any], *, require: bool = True) -> list[FieldError]:
        """Every problem of a body at once; `require=False` for partial bodies (updates)."""
        found: dict[str, list[FieldError]] = {}
        for error in self._validator.iter_errors(body):
            for problem in _worded(error):
                if problem.message != "is required" or require:
                    found.setdefault(problem.field, []).append(problem)
        order = {name: position for position, name in enumerate(body)}
        fields = sorted(found, key=lambda field: order.get(field.split(".", 1)[0], len(order)))
        return [problem for field in fields for problem in _type_error_alone(found[field])]


def _type_error_alone(problems: list[FieldError]) -> list[FieldError]:
    """A wrong type says it all: a value of the wrong type is not also checked for its enum or length."""
    wrong_type = [problem for problem in problems if problem.message.startswith("expected ")]
    return wrong_type or problems


def _worded(error: ValidationError) -> Iterator[FieldError]:
    """The contract's wording of one jsonschema error (one per name for unknown and missing names)."""
    path = ".".join(str(part) for part in error.absolute_path)
    prefix = f"{path}." if path else ""
    # Typed Any on purpose: which of these is set, and how, depends on the keyword matched below.
    keyword = error.validator
    instance: Any = error.instance
    value_any: Any = error.validator_value
    schema_any: Any = error.schema
    if keyword == "additionalProperties":
        known = schema_any.get("properties", {})
        yield from (FieldError(prefix + name, "unknown property") for name in instance if name not in known)
    elif keyword == "required":
        missing = (name for name in value_any if name not in instance)
        yield from (FieldError(prefix + name, "is required") for name in missing)
    elif keyword == "type":
        types = value_any
        expected = types if isinstance(types, str) else " or ".join(types)
        yield FieldError(path, f"expected {expected}, got {json_type_name(instance)}")
    elif keyword == "enum":
        yield FieldError(path, "must be one of: " + ", ".join(map(str, value_any)))
    elif keyword == "minLength":
        yield FieldError(path, f"must be at least {value_any} character(s) long")
    elif keyword == "maxLength":
        yield FieldError(path, f"must be at most {value_any} characters long")
    elif keyword == "format":
        yield FieldError(path, _FORMAT_MESSAGES.get(str(value_any), error.message))
    else:
        yield FieldError(path, error.message)


__all__ = ["EntitySchema", "json_type_name"]
