"""Dotted property paths: reading, writing, plain-path detection and the fields an expression reads."""

from __future__ import annotations

from typing import Any

import pytest

from mapsync.mapping.paths import field_names, get_path, make_getter, plain_path, set_path, split


def test_split() -> None:
    assert split("name") == ("name",)
    assert split("postal_address.line1") == ("postal_address", "line1")


@pytest.mark.parametrize(("record", "parts", "expected"), [
    ({"a": 1}, ("a",), 1),
    ({"a": {"b": {"c": 3}}}, ("a", "b", "c"), 3),
    ({"a": None}, ("a", "b"), None),
    ({"a": "text"}, ("a", "b"), None),
    ({}, ("a", "b"), None),
    (None, ("a",), None),
])
def test_get_path(record: Any, parts: tuple[str, ...], expected: Any) -> None:
    assert get_path(record, parts) == expected


def test_set_path_creates_and_replaces_null_parents() -> None:
    record: dict[str, Any] = {"postal_address": None, "name": "x"}
    set_path(record, ("postal_address", "city"), "Oslo")
    set_path(record, ("delivery_address", "line1"), "Kaien 4")
    set_path(record, ("name",), "y")
    assert record == {"postal_address": {"city": "Oslo"}, "delivery_address": {"line1": "Kaien 4"}, "name": "y"}


def test_set_path_keeps_siblings() -> None:
    record: dict[str, Any] = {"postal_address": {"line1": "a", "city": "b"}}
    set_path(record, ("postal_address", "city"), None)
    assert record == {"postal_address": {"line1": "a", "city": None}}


@pytest.mark.parametrize(("expression", "expected"), [
    ("Navn", ("Navn",)),
    ("postal_address.line1", ("postal_address", "line1")),
    ("a.b.c", ("a", "b", "c")),
    ('"Navn"', ("Navn",)),
    ("join(' ', [Navn, Poststed])", None),
    ("Navn || ''", None),
    ("items[0]", None),
    ("a.b[*].c", None),
    ("`1`", None),
    ("Navn ||", None),  # a syntax error is not a plain path
])
def test_plain_path(expression: str, expected: tuple[str, ...] | None) -> None:
    assert plain_path(expression) == expected


@pytest.mark.parametrize(("expression", "expected"), [
    ("Navn", {"Navn"}),
    ("postal_address.line1", {"postal_address"}),
    ("join(' ', [Navn, Poststed])", {"Navn", "Poststed"}),
    ("Navn || Poststed", {"Navn", "Poststed"}),
    ("items[?active].name", {"items"}),
    ("items[*].name", {"items"}),
    ("a[0].b", {"a"}),
    ("to_string(Postnr)", {"Postnr"}),
    ("`\"x\"`", set()),
])
def test_field_names(expression: str, expected: set[str]) -> None:
    assert field_names(expression) == expected


def test_getters() -> None:
    record = {"Navn": "A", "postal_address": {"city": "Oslo"}, "n": [1, 2]}
    assert make_getter("Navn")(record) == "A"
    assert make_getter("Missing")(record) is None
    assert make_getter("postal_address.city")(record) == "Oslo"
    assert make_getter("postal_address.city")({"postal_address": None}) is None
    assert make_getter("join('-', [Navn, postal_address.city])")(record) == "A-Oslo"
    assert make_getter("length(n)")(record) == 2
