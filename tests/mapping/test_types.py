"""The converters of mapsync.mapping.types: canonical values, the way back, and which types fit."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mapsync.errors import MappingError
from mapsync.mapping.types import (
    TYPE_NAMES,
    canonical_converter,
    date_converter,
    format_utc,
    parse_datetime,
    source_converter,
    target_type_fits,
    to_boolean,
    to_datetime,
    to_integer,
    to_number,
    to_string,
)

OSLO = ZoneInfo("Europe/Oslo")
to_date = date_converter(OSLO)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    ("", None),
    ("Fjordbygg AS", "Fjordbygg AS"),
    (" ", " "),
    ("0154", "0154"),
    (42, "42"),
    (1.5, "1.5"),
])
def test_to_string(value: Any, expected: Any) -> None:
    assert to_string(value) == expected


@pytest.mark.parametrize("value", [True, False, {"a": 1}, ["x"]])
def test_to_string_refuses(value: Any) -> None:
    with pytest.raises(MappingError, match="expected a string") as info:
        to_string(value)
    assert info.value.value == value


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    ("", None),
    (0, 0),
    (1042, 1042),
    (-7, -7),
    (3.0, 3),
    ("1042", 1042),
    (" 12 ", 12),
    ("-5", -5),
    ("+5", 5),
    ("007", 7),
])
def test_to_integer(value: Any, expected: Any) -> None:
    result = to_integer(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("value", [True, False, 1.5, "12a", "1.0", "abc", [1], {}])
def test_to_integer_refuses(value: Any) -> None:
    # bool is an int subclass in Python, but never an integer here.
    with pytest.raises(MappingError, match="expected an integer"):
        to_integer(value)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), (0, 0), (2.5, 2.5), ("2.5", 2.5), ("10", 10.0), (-1, -1),
])
def test_to_number(value: Any, expected: Any) -> None:
    assert to_number(value) == expected


@pytest.mark.parametrize("value", [True, False, "ten", [1]])
def test_to_number_refuses(value: Any) -> None:
    with pytest.raises(MappingError, match="expected a number"):
        to_number(value)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), (True, True), (False, False), ("true", True), ("False", False),
    ("TRUE", True),
])
def test_to_boolean(value: Any, expected: Any) -> None:
    assert to_boolean(value) is expected


@pytest.mark.parametrize("value", [0, 1, "yes", "1", 1.0, [True]])
def test_to_boolean_refuses(value: Any) -> None:
    with pytest.raises(MappingError, match="expected a boolean"):
        to_boolean(value)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    ("", None),
    ("2024-03-01", "2024-03-01"),
    ("2024-02-29", "2024-02-29"),
    ("2024-03-01T00:00:00+01:00", "2024-03-01"),
    ("2024-08-15T00:00:00+02:00", "2024-08-15"),
    # Oslo midnight as a UTC instant is still the Oslo calendar day.
    ("2024-02-29T23:00:00Z", "2024-03-01"),
    ("2024-08-14T22:00:00Z", "2024-08-15"),
    ("2024-08-14T22:00:00z", "2024-08-15"),
    ("2024-03-01T12:30:00.123+01:00", "2024-03-01"),
    (" 2024-03-01T00:00:00+01:00 ", "2024-03-01"),
])
def test_to_date(value: Any, expected: Any) -> None:
    assert to_date(value) == expected


@pytest.mark.parametrize("value", [
    "2024-02-30", "2024-13-01", "01.03.2024", "2024-03-01T00:00:00", "tomorrow", "2024-3-1", 20240301,
    True,
])
def test_malformed_dates_name_the_value(value: Any) -> None:
    with pytest.raises(MappingError) as info:
        to_date(value)
    assert repr(value) in str(info.value)
    assert info.value.value == value


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(MappingError) as info:
        to_date("x" * 500)
    assert "..." in str(info.value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    ("", None),
    ("2024-03-01T00:00:00+01:00", "2024-02-29T23:00:00.000Z"),
    ("2024-06-01T12:00:00.5+02:00", "2024-06-01T10:00:00.500Z"),
    ("2024-06-01T10:00:00Z", "2024-06-01T10:00:00.000Z"),
])
def test_to_datetime(value: Any, expected: Any) -> None:
    assert to_datetime(value) == expected


@pytest.mark.parametrize("value", ["2024-06-01T10:00:00", "2024-06-01", "noon", 17])
def test_to_datetime_refuses(value: Any) -> None:
    with pytest.raises(MappingError, match="expected a datetime"):
        to_datetime(value)


def test_parse_datetime_needs_a_zone() -> None:
    assert parse_datetime("2024-06-01T10:00:00Z").utcoffset() is not None
    with pytest.raises(ValueError, match="no time zone"):
        parse_datetime("2024-06-01T10:00:00")


def test_format_utc_keeps_milliseconds() -> None:
    moment = datetime.fromisoformat("2024-06-01T12:00:00.987654+02:00")
    assert format_utc(moment) == "2024-06-01T10:00:00.987Z"


def test_canonical_converter_covers_every_type() -> None:
    for name in TYPE_NAMES:
        assert callable(canonical_converter(name, OSLO))
    assert canonical_converter("reference", OSLO)("K1") == "K1"
    assert canonical_converter("date", OSLO)("2024-03-01T00:00:00+01:00") == "2024-03-01"
    with pytest.raises(KeyError):
        canonical_converter("text", OSLO)


# -- back to the source's representation ----------------------------------------------------------

DATE_TIME_PROP = {"type": ["string", "null"], "format": "date-time"}


@pytest.mark.parametrize(("day", "expected"), [
    ("2024-01-10", "2024-01-10T00:00:00+01:00"),
    ("2024-08-15", "2024-08-15T00:00:00+02:00"),
    # Summer time starts at 02:00 on 2024-03-31 and ends at 03:00 on 2024-10-27: both midnights are
    # still on the old offset.
    ("2024-03-30", "2024-03-30T00:00:00+01:00"),
    ("2024-03-31", "2024-03-31T00:00:00+01:00"),
    ("2024-04-01", "2024-04-01T00:00:00+02:00"),
    ("2024-10-26", "2024-10-26T00:00:00+02:00"),
    ("2024-10-27", "2024-10-27T00:00:00+02:00"),
    ("2024-10-28", "2024-10-28T00:00:00+01:00"),
])
def test_date_back_to_local_midnight(day: str, expected: str) -> None:
    back = source_converter("date", DATE_TIME_PROP, OSLO)
    assert back(day) == expected
    assert to_date(expected) == day


def test_date_back_of_none_is_none() -> None:
    assert source_converter("date", DATE_TIME_PROP, OSLO)(None) is None


def test_date_back_to_a_plain_date_property_stays_a_date() -> None:
    back = source_converter("date", {"type": "string", "format": "date"}, OSLO)
    assert back("2024-08-15") == "2024-08-15"


@pytest.mark.parametrize(("type_name", "prop", "value", "expected"), [
    ("string", {"type": "string"}, None, ""),
    ("string", {"type": "string"}, "Oslo", "Oslo"),
    ("string", {"type": ["string", "null"]}, None, None),
    ("string", {}, None, None),
    ("reference", {"type": "string"}, None, ""),
    ("reference", {"type": ["string", "null"]}, None, None),
    ("integer", {"type": ["integer", "null"]}, None, None),
    ("integer", {"type": "integer"}, 5, 5),
    ("boolean", {"type": "boolean"}, True, True),
])
def test_source_converter(type_name: str, prop: dict[str, Any], value: Any, expected: Any) -> None:
    assert source_converter(type_name, prop, OSLO)(value) == expected


# -- which row types fit which target properties --------------------------------------------------

@pytest.mark.parametrize(("type_name", "prop"), [
    ("string", {"type": "string"}),
    ("string", {"type": ["string", "null"]}),
    ("reference", {"type": ["string", "null"]}),
    ("integer", {"type": ["integer", "null"]}),
    ("integer", {"type": "number"}),
    ("number", {"type": "number"}),
    ("boolean", {"type": "boolean"}),
    ("date", {"type": ["string", "null"], "format": "date"}),
    ("date", {"type": "string", "format": "date-time"}),
    ("datetime", {"type": "string", "format": "date-time"}),
    ("string", {}),
    ("string", {"type": "null"}),
])
def test_types_that_fit(type_name: str, prop: dict[str, Any]) -> None:
    assert target_type_fits(type_name, prop) is None


@pytest.mark.parametrize(("type_name", "prop", "fragment"), [
    ("integer", {"type": "string"}, "type integer does not fit a property of type string"),
    ("string", {"type": ["integer", "null"]}, "type string does not fit a property of type integer"),
    ("number", {"type": "integer"}, "does not fit"),
    ("boolean", {"type": "string"}, "does not fit"),
    ("string", {"type": ["string", "null"], "format": "date"}, "use type date"),
    ("string", {"type": "string", "format": "date-time"}, "use type datetime"),
    ("datetime", {"type": "string", "format": "date"}, "use type date"),
    ("date", {"type": "string", "format": "email"}, "format email"),
])
def test_types_that_do_not_fit(type_name: str, prop: dict[str, Any], fragment: str) -> None:
    why = target_type_fits(type_name, prop)
    assert why is not None
    assert fragment in why
