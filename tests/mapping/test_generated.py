"""The generated forward and projection compute what the row loops compute, and fail as they fail."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from mapsync.errors import MappingError, SpecError
from mapsync.mapping.mapper import DictLinks, Mapper
from mapsync.spec._yaml import parse_document
from mapsync.spec.checker import MappingChecker

CONNECTIONS: dict[str, dict[str, Any]] = {"tidsbanken": {"type": "tidsbanken"}, "custompms": {"type": "custompms"}}
LOOKUPS = 'lookups:\n  towns: {"Oslo": OSLO, "Bergen": BERGEN, "10": TEN}\n'

KUNDE_ROWS = """\
  - {source: "trim(Navn)", target: name, type: string, reverse: {Navn: name}}
  - {source: "regex_replace(Organisasjonsnummer, '[^0-9]', '')", target: organization_number, type: string,
     reverse: {Organisasjonsnummer: organization_number}}
  - {source: Gateadresse, target: postal_address.line1, type: string, default: Ukjent adresse}
  - {source: "pad_left(Postnr, `4`, '0')", target: postal_address.postal_code, type: string,
     reverse: {Postnr: postal_address.postal_code}}
  - {source: Poststed, target: postal_address.city, type: string, lookup: towns, lookup_unknown: keep}
  - {source: LevPoststed, target: delivery_address.city, type: string, lookup: towns, lookup_unknown: null}
  - {source: "coalesce(Telefon, Mobil)", target: phone, type: string, reverse: {Telefon: phone}}
  - {source: "lower(trim(Epost))", target: email, type: string, reverse: {Epost: email}}
  - {source: "regex_match(Url, '^https://')", target: active, type: boolean, direction: forward}
  - {source: Mobil, target: mobile, type: string}
"""

PROSJEKT_ROWS = """\
  - {source: Navn, target: name, type: string}
  - {source: KundeId, target: customer_id, type: reference, dataflow: kunde-customer}
  - {source: AnsvarligId, target: manager_employee_id, type: integer, default: 7}
  - {source: StartDato, target: start_date, type: date}
  - {source: Avsluttet, target: closed, type: boolean}
"""


def mapper(entity: str, target: str, rows: str, head: str = "") -> Mapper:
    text = (f"dataflow: custom\nsource: {{connection: tidsbanken, entity: {entity}}}\n"
            f"target: {{connection: custompms, entity: {target}}}\n{head}properties:\n{rows}")
    doc, syntax = parse_document(text, "custom.yaml")
    assert doc is not None, syntax
    errors: list[SpecError] = []
    spec = MappingChecker(doc, CONNECTIONS, errors).build()
    assert spec is not None and not errors, [str(e) for e in errors]
    return Mapper(spec)


def outcome(run: Any) -> tuple[str, Any]:
    try:
        return "value", run()
    except MappingError as exc:
        return type(exc).__name__, str(exc)


VALUES: list[Any] = [None, "", "  Oslo ", "Oslo", "10", 10, 10.0, "0150", "NO 974 760 673", "Post@X.no ",
                     "https://x.no", True, [], {"x": 1}]


def kunde_records() -> list[dict[str, Any]]:
    fields = ["Navn", "Organisasjonsnummer", "Gateadresse", "Postnr", "Poststed", "LevPoststed", "Telefon",
              "Mobil", "Epost", "Url"]
    out = []
    for shift, value in itertools.product(range(len(fields)), VALUES):
        record: dict[str, Any] = {"Id": "K1"}
        for index, field in enumerate(fields):
            record[field] = VALUES[(index + shift) % len(VALUES)] if field != fields[shift] else value
        out.append(record)
    return out


def test_the_generated_forward_and_projection_match_the_row_loops_value_for_value_and_error_for_error() -> None:
    m = mapper("Kunde", "Customer", KUNDE_ROWS, LOOKUPS)
    assert m.forward is not m._forward_by_rows  # the generated function is in use
    failures = 0
    for record in kunde_records():
        expected = outcome(lambda: m._forward_by_rows(record))  # noqa: B023 (called at once)
        assert outcome(lambda: m.forward(record)) == expected, record  # noqa: B023
        assert outcome(lambda: m.project_source(record)) == \
            outcome(lambda: m._project_source_by_rows(record)), record  # noqa: B023
        failures += expected[0] != "value"
    assert 0 < failures < len(kunde_records())  # both the fast path and the fall back were exercised


def test_a_failure_in_generated_code_names_the_row_as_before() -> None:
    m = mapper("Kunde", "Customer", KUNDE_ROWS, LOOKUPS)
    with pytest.raises(MappingError, match=r"custom\.yaml:\d+: cannot evaluate 'lower\(trim\(Epost\)\)' on "
                                           r"Kunde record 'K1': trim\(\) cannot take a boolean"):
        m.forward({"Id": "K1", "Epost": True})


def test_references_defaults_dates_and_settled_values_in_generated_code() -> None:
    m = mapper("Prosjekt", "Project", PROSJEKT_ROWS)
    links = DictLinks({"kunde-customer": {"K1": "c-1"}})
    record = {"Navn": "Lager", "KundeId": "K1", "AnsvarligId": None, "StartDato": "2024-03-01T00:00:00+01:00",
              "Avsluttet": "true"}
    assert m.forward(record, links) == {"name": "Lager", "customer_id": "c-1", "manager_employee_id": 7,
                                        "start_date": "2024-03-01", "closed": True}
    assert m.project_source({**record, "KundeId": "K9"}, links, {"customer_id": "c-gone"})["customer_id"] == "c-gone"
    with pytest.raises(MappingError, match="'K9' is not linked yet"):
        m.forward({**record, "KundeId": "K9"}, links)


@pytest.mark.parametrize("name", ["it's", 'say "hi"', "back\\slash", "new\nline", "x')\nimport os\n#"])
def test_names_from_a_mapping_are_never_code(name: str) -> None:
    m = mapper("Avdeling", "Customer", "  - {source: Navn, target: name, type: string}\n",
               "constants: {kind: department}\n")
    m.spec.constants[name] = "constant"
    m2 = Mapper(m.spec)  # a constant's name is a key of the generated record display
    assert m2.forward({"Navn": "Salg"}) == {"kind": "department", name: "constant", "name": "Salg"}


def test_a_deeper_target_path_keeps_the_row_loop() -> None:
    m = mapper("Avdeling", "Customer", "  - {source: Navn, target: name, type: string}\n",
               "constants: {kind: department, postal_address.city: Oslo}\n")
    assert m.forward == m._forward_by_rows
    assert m.forward({"Navn": "Salg"}) == {"kind": "department", "postal_address": {"city": "Oslo"}, "name": "Salg"}
