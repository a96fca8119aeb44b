"""The data types of a property row: canonical values, and the way back to a source's representation.

Canonical values are the target's representation (Custompms): None for unknown, str for strings and
ids, int, float, bool, "YYYY-MM-DD" for dates, UTC "YYYY-MM-DDTHH:MM:SS.fffZ" for datetimes. Comparing
in one representation is what makes "" and a missing value equal, and echoes harmless.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from mapsync.errors import MappingError

Coerce = Callable[[Any], Any]

TYPE_NAMES = ("string", "integer", "number", "boolean", "date", "datetime", "reference")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_string(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise MappingError(f"expected a string, got {_describe(value)}", value=value)


def to_integer(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise MappingError(f"expected an integer, got {_describe(value)}", value=value)


def to_number(value: Any) -> float | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise MappingError(f"expected a number, got {_describe(value)}", value=value)


def to_boolean(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise MappingError(f"expected a boolean, got {_describe(value)}", value=value)


def parse_datetime(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed


def date_converter(zone: ZoneInfo) -> Coerce:
    """A date, or a datetime with offset read as the calendar day it is in `zone`."""

    def to_date(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            if _DATE.match(value):
                try:
                    return date.fromisoformat(value).isoformat()
                except ValueError:
                    pass
            else:
                try:
                    return parse_datetime(value).astimezone(zone).date().isoformat()
                except ValueError:
                    pass
        raise MappingError(f"expected a date (YYYY-MM-DD or a datetime with offset), got {_describe(value)}",
                           value=value)

    return to_date


def format_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_datetime(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return format_utc(parse_datetime(value))
        except ValueError:
            pass
    raise MappingError(f"expected a datetime with a time zone, got {_describe(value)}", value=value)


def canonical_converter(type_name: str, zone: ZoneInfo) -> Coerce:
    """The function turning a value of either side into the canonical value of `type_name`."""
    simple: dict[str, Coerce] = {
        "string": to_string,
        "reference": to_string,
        "integer": to_integer,
        "number": to_number,
        "boolean": to_boolean,
        "datetime": to_datetime,
    }
    if type_name == "date":
        return date_converter(zone)
    return simple[type_name]


def _nullable(prop_schema: Mapping[str, Any]) -> bool:
    kind = prop_schema.get("type")
    return kind is None or kind == "null" or (isinstance(kind, list) and "null" in kind)


def source_converter(type_name: str, prop_schema: Mapping[str, Any], zone: ZoneInfo) -> Coerce:
    """The function turning a canonical value into the source's representation of that property.

    Guided by the source's entity schema: a non-nullable string gets "" for None (Tidsbanken's habit),
    a date-time property gets local midnight in `zone` with that day's offset.
    """
    nullable = _nullable(prop_schema)
    is_datetime_prop = prop_schema.get("format") == "date-time"
    if type_name == "date" and is_datetime_prop:

        def date_to_midnight(value: Any) -> Any:
            if value is None:
                return None
            day = date.fromisoformat(value)
            return datetime.combine(day, time(0), tzinfo=zone).isoformat()

        return date_to_midnight
    if type_name in {"string", "reference"} and not nullable:
        return lambda value: "" if value is None else value
    return lambda value: value


def target_type_fits(type_name: str, prop_schema: Mapping[str, Any]) -> str | None:
    """Why a row type cannot be written to a property of this schema, or None when it fits."""
    kind = prop_schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    kinds.discard("null")
    if not kinds:
        return None
    wanted = {
        "string": {"string"},
        "reference": {"string"},
        "integer": {"integer", "number"},
        "number": {"number"},
        "boolean": {"boolean"},
        "date": {"string"},
        "datetime": {"string"},
    }[type_name]
    if not kinds & wanted:
        return f"type {type_name} does not fit a property of type {'/'.join(sorted(kinds))}"
    fmt = prop_schema.get("format")
    if type_name == "date" and fmt not in (None, "date", "date-time"):
        return f"type date does not fit a string of format {fmt}"
    if type_name == "datetime" and fmt == "date":
        return "type datetime does not fit a property of format date (use type date)"
    if type_name == "string" and fmt in {"date", "date-time"}:
        better = "date" if fmt == "date" else "datetime"
        return f"type string does not fit a property of format {fmt} (use type {better})"
    return None


def key_text(value: Any) -> str | None:
    """The text a value is looked up by in a lookup table. YAML keys are text, and a record's value may be a
    number: 10, 10.0 and "10" all find the key "10", true finds "true". A list or an object finds nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def field_converter(prop_schema: Mapping[str, Any]) -> Coerce:
    """A value (a lookup key text) into the JSON type of a source property: "10" into an integer field is 10."""
    kind = prop_schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "string" in kinds or not kinds - {None, "null"}:
        return lambda value: value
    if "integer" in kinds:
        return to_integer
    if "number" in kinds:
        return to_number
    return to_boolean if "boolean" in kinds else (lambda value: value)
