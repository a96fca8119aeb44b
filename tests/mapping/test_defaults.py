"""A row's `default`: written to the target for an empty source value, never copied back, and checked."""

from __future__ import annotations

from typing import Any

import pytest

from mapsync.errors import SpecError
from mapsync.mapping.mapper import Mapper
from mapsync.spec._yaml import parse_document
from mapsync.spec.checker import MappingChecker
from mapsync.spec.model import ConflictPolicy
from mapsync.sync.merge import merge

CONNECTIONS: dict[str, dict[str, Any]] = {"tidsbanken": {"type": "tidsbanken"}, "custompms": {"type": "custompms"}}


def check(rows: str, lookups: str = "") -> tuple[Mapper | None, list[str]]:
    text = ("dataflow: custom\nsource: {connection: tidsbanken, entity: Avdeling}\n"
            "target: {connection: custompms, entity: Customer}\n" + lookups + "properties:\n" + rows)
    doc, syntax = parse_document(text, "custom.yaml")
    assert doc is not None, syntax
    errors: list[SpecError] = []
    spec = MappingChecker(doc, CONNECTIONS, errors).build()
    return (Mapper(spec) if spec is not None and not errors else None), [str(e) for e in errors]


def mapper(rows: str, lookups: str = "") -> Mapper:
    m, errors = check(rows, lookups)
    assert m is not None, errors
    return m


CITY = "  - {source: Poststed, target: postal_address.city, type: string, default: Ukjent%s}\n"
MANAGER = "  - {source: Avdelingsleder, target: manager_employee_id, type: integer, default: 1000}\n"


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_source_value_gets_the_default(empty: Any) -> None:
    m = mapper(CITY % "" + MANAGER)
    record = {"Poststed": empty, "Avdelingsleder": None}
    assert m.project_source(record) == {"postal_address.city": "Ukjent", "manager_employee_id": 1000}
    assert m.forward(record) == {"postal_address": {"city": "Ukjent"}, "manager_employee_id": 1000}
    assert m.create_body(m.project_source(record))["postal_address"]["city"] == "Ukjent"


def test_a_value_is_never_replaced_by_the_default() -> None:
    m = mapper(CITY % "" + MANAGER)
    assert m.forward({"Poststed": "Oslo", "Avdelingsleder": 0}) == \
        {"postal_address": {"city": "Oslo"}, "manager_employee_id": 0}  # 0 is a value, not an empty one


def test_the_default_is_not_written_back() -> None:
    m = mapper(CITY % "")
    assert m.backward({"postal_address": {"city": None}}) == {"Poststed": ""}
    assert m.backward({"postal_address": {"city": "Ukjent"}}) == {"Poststed": "Ukjent"}  # a real edit there


def test_a_two_way_row_with_a_default_settles_after_the_first_write() -> None:
    """The link holds the source's projection (the default) on both sides; the next merge finds nothing."""
    m = mapper(CITY % "")
    source = m.project_source({"Poststed": ""})
    written = m.project_target(m.create_body(source))
    assert written == source == {"postal_address.city": "Ukjent"}
    result = merge(m.spec.rows, base_source=source, base_target=written, source=m.project_source({"Poststed": ""}),
                   target=written, policy=ConflictPolicy.SOURCE_WINS)
    assert (result.to_target, result.to_source, result.conflicts) == ({}, {}, [])


def test_a_default_and_a_lookup_together() -> None:
    m = mapper("  - {source: Poststed, target: postal_address.city, type: string, lookup: cities, default: NONE}\n",
               'lookups:\n  cities: {"Oslo": "OSLO"}\n')
    assert m.forward({"Poststed": ""}) == {"postal_address": {"city": "NONE"}}
    assert m.forward({"Poststed": "Oslo"}) == {"postal_address": {"city": "OSLO"}}


def test_a_date_default_is_held_in_canonical_form() -> None:
    text = ("dataflow: p\nsource: {connection: tidsbanken, entity: Prosjekt}\n"
            "target: {connection: custompms, entity: Project}\nproperties:\n"
            "  - {source: Navn, target: name, type: string}\n"
            "  - {source: StartDato, target: start_date, type: date, default: '2024-01-01'}\n")
    doc, _ = parse_document(text, "p.yaml")
    assert doc is not None
    errors: list[SpecError] = []
    spec = MappingChecker(doc, CONNECTIONS, errors).build()
    assert spec is not None and errors == []
    assert Mapper(spec).project_source({"Navn": "x", "StartDato": ""})["start_date"] == "2024-01-01"


@pytest.mark.parametrize(("row", "message"), [
    ("  - {source: Avdelingsleder, target: manager_employee_id, type: integer, default: many}\n",
     "custom.yaml:5: properties[0].default: the default 'many' does not fit type integer: expected an integer, "
     "got 'many'"),
    ("  - {source: Organisasjonsnr, target: organization_number, type: string, default: '123'}\n",
     "custom.yaml:5: properties[0].default: the default '123' does not fit Custompms Customer: '123' does not "
     "match '^[0-9]{9}$'"),
    (CITY % ", direction: reverse",
     "custom.yaml:5: properties[0].default: a `default` is written to the target when the source value is "
     "empty, and this row only flows back (direction: reverse): remove it"),
    (CITY % "", None),
    ("  - {source: Poststed, target: postal_address.city, type: string, default: ''}\n",
     "custom.yaml:5: properties[0].default: an empty `default` is no default (an empty source value already "
     "writes null): remove it"),
    ("  - {source: Poststed, target: postal_address.city, type: string, default: [a]}\n",
     "custom.yaml:5: properties[0].default: ['a'] is not of type 'string', 'number', 'boolean'"),
], ids=["wrong-type", "does-not-fit-target", "reverse-row", "fine", "empty", "not-a-scalar"])
def test_validate_checks_the_default(row: str, message: str | None) -> None:
    _, errors = check(row)
    assert errors == ([message] if message else [])


def test_a_reference_row_takes_no_default() -> None:
    text = ("dataflow: p\nsource: {connection: tidsbanken, entity: Prosjekt}\n"
            "target: {connection: custompms, entity: Project}\nproperties:\n"
            "  - {source: KundeId, target: customer_id, type: reference, dataflow: k, default: c-1}\n")
    doc, _ = parse_document(text, "p.yaml")
    assert doc is not None
    errors: list[SpecError] = []
    MappingChecker(doc, CONNECTIONS, errors).build()
    assert [str(e) for e in errors] == ["p.yaml:5: properties[0].default: a reference row writes the id of a "
                                        "linked record, never a `default`: remove it"]
