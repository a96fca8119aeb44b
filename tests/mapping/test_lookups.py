"""Lookup tables: `lookups:`, a row's `lookup` and `lookup_unknown`, both ways, and what validate refuses."""

from __future__ import annotations

from typing import Any

import pytest

from mapsync.errors import MappingError, SpecError
from mapsync.mapping.mapper import Mapper
from mapsync.mapping.types import key_text
from mapsync.spec._yaml import parse_document
from mapsync.spec.checker import MappingChecker
from mapsync.spec.model import DataflowSpec, Direction, LookupUnknown, RowType

CONNECTIONS: dict[str, dict[str, Any]] = {"tidsbanken": {"type": "tidsbanken"}, "custompms": {"type": "custompms"}}
LOOKUPS = """lookups:
  cities: {"Bergen": "BERGEN", "Oslo": "OSLO"}
  managers: {"1042": 7, "1043": 8}
"""


def check(rows: str, lookups: str = LOOKUPS) -> tuple[DataflowSpec | None, list[str]]:
    """A mapping of Avdeling -> Customer with these rows: its spec and every problem validate reports."""
    text = ("dataflow: custom\nsource: {connection: tidsbanken, entity: Avdeling}\n"
            "target: {connection: custompms, entity: Customer}\n" + lookups + "properties:\n" + rows)
    doc, syntax = parse_document(text, "custom.yaml")
    assert doc is not None, syntax
    errors: list[SpecError] = []
    spec = MappingChecker(doc, CONNECTIONS, errors).build()
    return spec, [str(e) for e in errors]


def mapper(rows: str, lookups: str = LOOKUPS) -> Mapper:
    spec, errors = check(rows, lookups)
    assert spec is not None and errors == []
    return Mapper(spec)


CITY = "  - {source: Poststed, target: postal_address.city, type: string, lookup: cities%s}\n"
MANAGER = "  - {source: Avdelingsleder, target: manager_employee_id, type: integer, lookup: managers%s}\n"


# -- forward and back --------------------------------------------------------------------------------

def test_a_plain_row_translates_forward_by_the_table_and_back_by_its_inverse() -> None:
    m = mapper(CITY % "")
    assert m.project_source({"Poststed": "Bergen"}) == {"postal_address.city": "BERGEN"}
    assert m.forward({"Poststed": "Oslo"}) == {"postal_address": {"city": "OSLO"}}
    assert m.backward({"postal_address": {"city": "BERGEN"}}) == {"Poststed": "Bergen"}


def test_a_number_finds_its_text_key_and_goes_back_in_the_source_fields_type() -> None:
    m = mapper(MANAGER % "")
    assert m.project_source({"Avdelingsleder": 1042}) == {"manager_employee_id": 7}
    assert m.project_source({"Avdelingsleder": 1043.0}) == {"manager_employee_id": 8}
    assert m.backward({"manager_employee_id": 8}) == {"Avdelingsleder": 1043}  # the integer, not "1043"


def test_an_empty_source_value_is_never_looked_up() -> None:
    m = mapper(CITY % "")
    assert m.project_source({"Poststed": ""}) == {"postal_address.city": None}
    assert m.backward({"postal_address": {"city": None}}) == {"Poststed": ""}  # Tidsbanken's empty text


def test_an_unknown_value_fails_the_record_naming_the_row_the_table_and_the_value() -> None:
    m = mapper(MANAGER % "")
    with pytest.raises(MappingError, match=r"^Avdelingsleder: 99 is not a key of lookup table 'managers' "
                                           r"\(row at custom\.yaml:8, lookup_unknown: fail\)$"):
        m.project_source({"Avdelingsleder": 99})
    with pytest.raises(MappingError, match="99 is not a key of lookup table 'managers'"):
        m.forward({"Avdelingsleder": 99})  # the hot path says the same
    with pytest.raises(MappingError, match=r"^manager_employee_id: 9 is not a value of lookup table 'managers' "
                                           r"\(row at custom\.yaml:8"):
        m.backward({"manager_employee_id": 9})


def test_lookup_unknown_keep_passes_the_value_both_ways() -> None:
    m = mapper(CITY % ", lookup_unknown: keep")
    assert m.project_source({"Poststed": "Tromsø"}) == {"postal_address.city": "Tromsø"}
    assert m.backward({"postal_address": {"city": "Tromsø"}}) == {"Poststed": "Tromsø"}


@pytest.mark.parametrize("word", ["null", '"null"'])
def test_lookup_unknown_null_writes_null_both_ways(word: str) -> None:
    m = mapper(CITY % f", lookup_unknown: {word}")
    assert m.spec.rows[0].lookup_unknown is LookupUnknown.NULL
    assert m.forward({"Poststed": "Tromsø"}) == {"postal_address": {"city": None}}
    assert m.backward({"postal_address": {"city": "TROMSØ"}}) == {"Poststed": ""}


def test_a_computed_forward_row_looks_up_its_expressions_value() -> None:
    m = mapper("  - {source: 'Poststed || Adresse', target: postal_address.city, type: string, lookup: cities,"
               " direction: forward}\n")
    assert m.forward({"Poststed": "", "Adresse": "Oslo"}) == {"postal_address": {"city": "OSLO"}}


def test_a_reverse_row_translates_back_only() -> None:
    m = mapper(CITY % ", direction: reverse")
    assert m.backward({"postal_address": {"city": "OSLO"}}) == {"Poststed": "Oslo"}
    assert m.create_values(m.project_source({"Poststed": "Oslo"})) == {}


def test_key_text_matches_typed_values_to_yaml_keys() -> None:
    assert [key_text(v) for v in ("10", 10, 10.0, 2.5, True, False, [1], None)] == \
        ["10", "10", "10", "2.5", "true", "false", None, None]


def test_row_words_are_typed_once() -> None:
    spec, _ = check(CITY % ", direction: forward")
    assert spec is not None
    row = spec.rows[0]
    assert row.type is RowType.STRING and row.direction is Direction.FORWARD and row.type == "string"


# -- what validate refuses ---------------------------------------------------------------------------

@pytest.mark.parametrize(("rows", "lookups", "message"), [
    (CITY % "", LOOKUPS,
     "custom.yaml:8: properties[0].lookup: unknown lookup table 'nowhere' (known: cities, managers)"),
    (CITY % "", "",
     "custom.yaml:5: properties[0].lookup: unknown lookup table 'nowhere' (known: none: add a top-level "
     "`lookups:` section)"),
], ids=["unknown", "no-lookups-section"])
def test_an_unknown_table_is_refused_at_the_row(rows: str, lookups: str, message: str) -> None:
    _, errors = check(rows.replace("lookup: cities", "lookup: nowhere"), lookups)
    assert errors == [message]


def test_a_table_used_both_ways_must_be_one_to_one() -> None:
    lookups = 'lookups:\n  cities: {"Bergen": "WEST", "Stavanger": "WEST", "Oslo": "EAST"}\n'
    _, errors = check(CITY % "", lookups)
    assert errors == ["custom.yaml:7: properties[0].lookup: lookup table 'cities' is not one-to-one: the keys "
                      "'Bergen' and 'Stavanger' all give 'WEST', and this row also flows back (direction: both), "
                      "where 'WEST' would have to go back to one key: make the table one-to-one, or set "
                      "`direction: forward`"]
    spec, errors = check(CITY % ", direction: forward", lookups)
    assert errors == [] and spec is not None
    assert Mapper(spec).forward({"Poststed": "Stavanger"}) == {"postal_address": {"city": "WEST"}}


def test_table_values_must_fit_the_rows_type_and_the_target_property() -> None:
    lookups = 'lookups:\n  managers: {"1042": "seven", "1043": 8}\n'
    _, errors = check(MANAGER % "", lookups)
    assert errors == ["custom.yaml:7: properties[0].lookup: lookup table 'managers', key '1042': 'seven' "
                      "does not fit type integer: expected an integer, got 'seven'"]
    lookups = 'lookups:\n  org: {"a": "123"}\n'
    _, errors = check("  - {source: Organisasjonsnr, target: organization_number, type: string, lookup: org,"
                      " direction: forward}\n", lookups)
    assert errors == ["custom.yaml:7: properties[0].lookup: lookup table 'org', key 'a': '123' does not "
                      "fit Custompms Customer: '123' does not match '^[0-9]{9}$'"]


@pytest.mark.parametrize(("row", "message"), [
    ("  - {source: Poststed, target: postal_address.city, type: string, lookup_unknown: keep}\n",
     "properties[0].lookup_unknown: `lookup_unknown` says what a `lookup` does with an unknown value; this row "
     "has no `lookup`: remove it"),
    ("  - {source: 'Poststed || Adresse', target: postal_address.city, type: string, lookup: cities,"
     " reverse: {Poststed: postal_address.city}}\n",
     "properties[0].lookup: a `lookup` on a computed source expression works forward only: set `direction: "
     "forward` (only a plain field path goes back through the inverse table)"),
    ("  - {source: Poststed, target: postal_address.city, type: string, lookup: cities,"
     " lookup_unknown: sometimes}\n",
     "properties[0].lookup_unknown: 'sometimes' is not one of ['keep', 'null', 'fail', None]"),
], ids=["unknown-without-lookup", "computed-both-ways", "bad-word"])
def test_misplaced_lookup_keys_are_refused(row: str, message: str) -> None:
    _, errors = check(row)
    assert [e.split(": ", 1)[1] for e in errors] == [message]
