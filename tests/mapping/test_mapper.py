"""Mapper: the reference mappings against their examples, patches, references, constants, computed rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapsync.errors import MappingError, SpecError
from mapsync.mapping.mapper import DictLinks, Mapper, UnresolvedReference
from mapsync.spec._yaml import parse_document
from mapsync.spec.checker import MappingChecker
from mapsync.spec.loader import load_workspace
from mapsync.spec.model import DataflowSpec, Example, Row, Side, Workspace

REPO = Path(__file__).parents[2]
CONNECTIONS: dict[str, dict[str, Any]] = {"tidsbanken": {"type": "tidsbanken"}, "custompms": {"type": "custompms"}}
WORKSPACE: Workspace = load_workspace(REPO / "mapsync.yaml", env={})
EXAMPLES: list[tuple[DataflowSpec, Example]] = [
    (spec, example) for spec in WORKSPACE.dataflows.values() for example in spec.examples]
IDS = [f"{spec.name}: {example.name}" for spec, example in EXAMPLES]


def mapper(name: str) -> Mapper:
    return Mapper(WORKSPACE.dataflows[name])


def custom(rows: str, constants: str = "") -> Mapper:
    text = ("dataflow: custom\nsource: {connection: tidsbanken, entity: Kunde}\n"
            "target: {connection: custompms, entity: Customer}\n" + constants + "properties:\n" + rows)
    doc, syntax = parse_document(text, "custom.yaml")
    assert doc is not None, syntax
    errors: list[SpecError] = []
    spec = MappingChecker(doc, CONNECTIONS, errors).build()
    assert spec is not None
    assert errors == [], errors
    return Mapper(spec)


KUNDE: dict[str, Any] = {
    "Id": "K1", "Navn": "Fjordbygg AS", "Organisasjonsnummer": "914778271", "Gateadresse": "Postboks 12",
    "Postadresse": "", "Postnr": "5003", "Poststed": "Bergen", "Leveringsadresse": "Strandkaien 4",
    "Leveringsadresse2": "", "LevPostNr": "5013", "LevPoststed": "Bergen", "Telefon": "55 12 34 56",
    "Mobil": "", "Epost": "post@fjordbygg.no", "Url": "", "Aktiv": True,
}


# -- the reference mappings against their own examples ---------------------------------------------

def test_every_reference_mapping_has_examples() -> None:
    assert {spec.name for spec, _ in EXAMPLES} == set(WORKSPACE.dataflows)


@pytest.mark.parametrize(("spec", "example"), EXAMPLES, ids=IDS)
def test_forward_equals_the_example(spec: DataflowSpec, example: Example) -> None:
    assert Mapper(spec).forward(example.source, DictLinks(example.links)) == example.target


@pytest.mark.parametrize(("spec", "example"), EXAMPLES, ids=IDS)
def test_backward_gives_the_example_source(spec: DataflowSpec, example: Example) -> None:
    back = Mapper(spec).backward(example.target, DictLinks(example.links))
    assert set(back) == {row.source_path for row in spec.rows}
    assert back == {key: example.source.get(key) for key in back}


@pytest.mark.parametrize(("spec", "example"), EXAMPLES, ids=IDS)
def test_both_sides_project_to_the_same_values(spec: DataflowSpec, example: Example) -> None:
    m = Mapper(spec)
    source_values = m.project_source(example.source, DictLinks(example.links))
    assert source_values == m.project_target(example.target)
    assert list(source_values) == [row.target for row in spec.rows]


def test_forward_converts_types() -> None:
    m = mapper("prosjekt-project")
    record = {"Navn": "P", "KundeId": None, "AvdelingId": None, "AnsvarligId": "1042",
              "StartDato": "2024-02-29T23:00:00Z", "FerdigDato": "", "Avsluttet": "true"}
    out = m.forward(record)
    assert out["manager_employee_id"] == 1042
    assert out["start_date"] == "2024-03-01"
    assert out["due_date"] is None
    assert out["closed_date"] is None  # missing is null
    assert out["closed"] is True
    assert out["internal"] is None


def test_a_value_that_does_not_fit_names_the_property_and_the_value() -> None:
    with pytest.raises(MappingError) as info:
        mapper("kunde-customer").forward({**KUNDE, "Aktiv": "ja"})
    assert info.value.prop == "Aktiv"
    assert info.value.value == "ja"
    assert str(info.value) == "Aktiv: expected a boolean, got 'ja'"


def test_a_malformed_date_names_the_property() -> None:
    with pytest.raises(MappingError, match=r"^StartDato: expected a date .*'01\.03\.2024'"):
        mapper("prosjekt-project").project_source({"Navn": "P", "StartDato": "01.03.2024"})


def test_project_target_names_the_target_property() -> None:
    with pytest.raises(MappingError) as info:
        mapper("avdeling-customer").project_target({"name": "x", "manager_employee_id": "boss"})
    assert info.value.prop == "manager_employee_id"
    assert "'boss'" in str(info.value)


def test_target_record_without_constants() -> None:
    m = mapper("avdeling-customer")
    record = m.target_record({"name": "Salg", "postal_address.city": "Oslo"}, with_constants=False)
    assert record == {"name": "Salg", "postal_address": {"city": "Oslo"}}
    assert m.target_record({})["kind"] == "department"


# -- patches ------------------------------------------------------------------------------------------

CURRENT: dict[str, Any] = {
    "id": "c-1", "kind": "customer", "name": "Fjordbygg AS",
    "postal_address": {"line1": "Postboks 12", "line2": None, "postal_code": "5003", "city": "Bergen"},
    "delivery_address": None,
}


def test_a_nested_object_is_sent_whole_merged_with_the_current_one() -> None:
    m = mapper("kunde-customer")
    patch = m.target_patch({"postal_address.city": "Oslo", "postal_address.postal_code": "0150"}, CURRENT)
    assert patch == {"postal_address": {"line1": "Postboks 12", "line2": None, "postal_code": "0150",
                                        "city": "Oslo"}}
    assert CURRENT["postal_address"]["city"] == "Bergen"  # the current record is not changed


def test_patch_of_a_null_object_and_of_top_level_properties() -> None:
    m = mapper("kunde-customer")
    assert m.target_patch({"delivery_address.line1": "Kaien 4", "phone": None}, CURRENT) == {
        "delivery_address": {"line1": "Kaien 4"}, "phone": None}
    assert m.target_patch({"name": "Nytt navn"}, CURRENT) == {"name": "Nytt navn"}
    assert m.target_patch({"postal_address.city": "Oslo"}, None) == {"postal_address": {"city": "Oslo"}}
    assert m.target_patch({}, CURRENT) == {}


def test_patch_ignores_paths_no_row_maps() -> None:
    assert mapper("kunde-customer").target_patch({"version": 9, "name": "N"}, CURRENT) == {"name": "N"}


def test_patch_holds_no_constants() -> None:
    assert "kind" not in mapper("kunde-customer").target_patch({"name": "N"}, CURRENT)


# -- source changes ----------------------------------------------------------------------------------

TARGET: dict[str, Any] = {
    "kind": "customer", "name": "Fjordbygg AS", "organization_number": None,
    "postal_address": {"line1": "Postboks 12", "line2": None, "postal_code": "5003", "city": "Bergen"},
    "delivery_address": None, "phone": "55 12 34 56", "mobile": None, "email": None, "website": None,
    "active": False,
}


def test_source_changes_for_a_subset_of_rows() -> None:
    m = mapper("kunde-customer")
    assert m.source_changes(TARGET, {"name", "active", "postal_address.city"}) == {
        "Navn": "Fjordbygg AS", "Aktiv": False, "Poststed": "Bergen"}
    assert m.source_changes(TARGET, {"organization_number", "delivery_address.line1"}) == {
        "Organisasjonsnummer": "", "Leveringsadresse": ""}
    assert m.source_changes(TARGET, set()) == {}
    assert m.source_changes(TARGET, {"no.such.row"}) == {}


def test_source_changes_of_every_row() -> None:
    back = mapper("kunde-customer").source_changes(TARGET)
    assert len(back) == 15
    assert back["Telefon"] == "55 12 34 56"
    assert back["Mobil"] == ""  # Tidsbanken strings are never null


def test_nullable_source_fields_get_null() -> None:
    back = mapper("avdeling-customer").source_changes({"manager_employee_id": None, "name": None})
    assert back["Avdelingsleder"] is None
    assert back["Navn"] == ""


def test_dates_go_back_as_local_midnight() -> None:
    back = mapper("prosjekt-project").source_changes(
        {"start_date": "2024-03-31", "due_date": "2024-10-27", "closed_date": "2024-07-01", "order_date": None},
        {"start_date", "due_date", "closed_date", "order_date"})
    assert back == {"StartDato": "2024-03-31T00:00:00+01:00", "FerdigDato": "2024-10-27T00:00:00+02:00",
                    "AvsluttetDato": "2024-07-01T00:00:00+02:00", "BestillingsDato": None}


def test_a_malformed_target_value_names_the_target_property() -> None:
    with pytest.raises(MappingError, match=r"^start_date: expected a date"):
        mapper("prosjekt-project").source_changes({"start_date": "soon"}, {"start_date"})


# -- references ------------------------------------------------------------------------------------------

LINKS = DictLinks({"kunde-customer": {"K1": "c-1", "K2": "c-2"}, "avdeling-customer": {"A1": "c-9"}})
PROSJEKT: dict[str, Any] = {"Navn": "P", "KundeId": "K2", "AvdelingId": "A1"}


def test_references_are_translated_forward() -> None:
    out = mapper("prosjekt-project").forward(PROSJEKT, LINKS)
    assert (out["customer_id"], out["department_id"]) == ("c-2", "c-9")


def test_references_are_translated_back() -> None:
    back = mapper("prosjekt-project").source_changes({"customer_id": "c-1", "department_id": None},
                                                     {"customer_id", "department_id"}, LINKS)
    assert back == {"KundeId": "K1", "AvdelingId": None}


def test_an_unlinked_reference_waits() -> None:
    m = mapper("prosjekt-project")
    with pytest.raises(UnresolvedReference) as info:
        m.forward({**PROSJEKT, "KundeId": "K404"}, LINKS)
    assert (info.value.dataflow, info.value.record_id, info.value.prop) == ("kunde-customer", "K404", "KundeId")
    assert "'K404' is not linked yet in dataflow 'kunde-customer'" in str(info.value)
    assert isinstance(info.value, MappingError)


def test_an_unlinked_reference_without_any_links() -> None:
    with pytest.raises(UnresolvedReference):
        mapper("prosjekt-project").forward(PROSJEKT)


def test_an_unlinked_target_reference_waits_too() -> None:
    with pytest.raises(UnresolvedReference) as info:
        mapper("prosjekt-project").backward({"name": "P", "customer_id": "c-404"}, LINKS)
    assert (info.value.dataflow, info.value.record_id, info.value.prop) == ("kunde-customer", "c-404", "customer_id")


def test_null_references_need_no_link() -> None:
    out = mapper("prosjekt-project").forward({"Navn": "P", "KundeId": None, "AvdelingId": ""})
    assert (out["customer_id"], out["department_id"]) == (None, None)


def test_dict_links_both_ways() -> None:
    assert LINKS.to_target("kunde-customer", "K1") == "c-1"
    assert LINKS.to_source("kunde-customer", "c-2") == "K2"
    assert LINKS.to_target("nothing", "K1") is None
    assert LINKS.to_source("avdeling-customer", "c-1") is None


# -- which target records belong to a dataflow -----------------------------------------------------------

def test_owns_target_by_constants() -> None:
    kunde, avdeling, prosjekt = (mapper(n) for n in ("kunde-customer", "avdeling-customer", "prosjekt-project"))
    assert kunde.owns_target({"kind": "customer", "name": "x"})
    assert not kunde.owns_target({"kind": "department", "name": "x"})
    assert avdeling.owns_target({"kind": "department"})
    assert not avdeling.owns_target({"name": "no kind"})
    assert prosjekt.owns_target({"anything": 1})  # no constants: every record


def test_owns_target_by_a_nested_constant() -> None:
    m = custom("  - {source: Navn, target: name, type: string}\n",
               "constants: {kind: customer, postal_address.city: Oslo}\n")
    assert m.owns_target({"kind": "customer", "postal_address": {"city": "Oslo"}})
    assert not m.owns_target({"kind": "customer", "postal_address": None})
    assert m.forward({"Navn": "N"}) == {"kind": "customer", "postal_address": {"city": "Oslo"}, "name": "N"}


# -- computed rows ---------------------------------------------------------------------------------------

COMPUTED = (
    "  - source: \"join(' ', [Navn, Poststed])\"\n"
    "    target: name\n"
    "    type: string\n"
    "    reverse: {Navn: name, Poststed: postal_address.city}\n"
    "  - {source: \"Telefon || Mobil\", target: phone, type: string, direction: forward}\n"
    "  - {source: Epost, target: email, type: string, direction: reverse}\n"
    "  - {source: Aktiv, target: active, type: boolean}\n"
)


def test_computed_row_forward() -> None:
    m = custom(COMPUTED)
    out = m.forward({"Navn": "Fjordbygg AS", "Poststed": "Bergen", "Telefon": "", "Mobil": "912", "Epost": "a@b",
                     "Aktiv": True})
    assert out["name"] == "Fjordbygg AS Bergen"
    assert out["phone"] == "912"  # "" is false in JMESPath: the mobile number is used
    assert m.forward({"Navn": "A", "Poststed": "B", "Telefon": "55", "Mobil": "912"})["phone"] == "55"


def test_computed_row_reverse_writes_each_source_field() -> None:
    m = custom(COMPUTED)
    target = {"name": "Fjordbygg AS", "postal_address": {"city": None}, "phone": "55", "email": "a@b",
              "active": True}
    assert m.backward(target) == {"Navn": "Fjordbygg AS", "Poststed": "", "Epost": "a@b", "Aktiv": True}
    assert m.source_changes(target, {"name"}) == {"Navn": "Fjordbygg AS", "Poststed": ""}


def test_forward_only_rows_never_flow_back() -> None:
    m = custom(COMPUTED)
    assert m.source_changes({"phone": "55"}, {"phone"}) == {}
    assert "Telefon" not in m.backward({"phone": "55"})


def test_reverse_expressions_may_compute() -> None:
    m = custom("  - source: \"join('', ['https://', Url])\"\n"
               "    target: website\n"
               "    type: string\n"
               "    reverse: {Url: \"website\", Navn: \"join('', ['site of ', name])\"}\n"
               "  - {source: Navn, target: name, type: string, direction: forward}\n")
    assert m.forward({"Url": "fjordbygg.no", "Navn": "F"})["website"] == "https://fjordbygg.no"
    assert m.backward({"website": "https://x.no", "name": "F"}) == {"Url": "https://x.no", "Navn": "site of F"}


def test_reverse_values_are_converted_to_the_source_field_type() -> None:
    m = custom("  - source: \"join(' ', [Navn, Poststed])\"\n"
               "    target: name\n"
               "    type: string\n"
               "    reverse: {Navn: name, Aktiv: \"name != `null`\"}\n")
    assert m.backward({"name": "X"}) == {"Navn": "X", "Aktiv": True}
    assert m.backward({"name": None}) == {"Navn": "", "Aktiv": False}


# -- forward is target_record(project_source(...)) in one pass ------------------------------------------

PATH_PART = st.sampled_from(["a", "b", "c"])
TARGETS = st.lists(st.lists(PATH_PART, min_size=1, max_size=3).map(".".join), min_size=1, max_size=8, unique=True)
CONSTANTS = st.dictionaries(st.sampled_from(["a", "b", "kind", "c.a", "a.b"]), st.sampled_from(["x", None, 1]),
                            max_size=3)
VALUES = st.one_of(st.none(), st.text(max_size=3), st.integers(-2, 2), st.booleans())


def synthetic(targets: list[str], constants: dict[str, Any], types: list[str]) -> Mapper:
    rows = [Row(source=f"f{i}", target=target, type=kind, source_path=f"f{i}")
            for i, (target, kind) in enumerate(zip(targets, types, strict=False))]
    side = Side("x", "tidsbanken", "Kunde")
    return Mapper(DataflowSpec(name="synthetic", file="s.yaml", source=side, target=side, rows=rows,
                               constants=constants))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(TARGETS, CONSTANTS, st.lists(st.sampled_from(["string", "integer", "boolean", "number"]), min_size=8,
                                    max_size=8), st.lists(VALUES, min_size=8, max_size=8))
def test_forward_is_target_record_of_project_source(targets: list[str], constants: dict[str, Any],
                                                    types: list[str], values: list[Any]) -> None:
    m = synthetic(targets, constants, types)
    record = {f"f{i}": value for i, value in enumerate(values)}
    try:
        expected = m.target_record(m.project_source(record))
    except MappingError as exc:
        with pytest.raises(MappingError) as info:
            m.forward(record)
        assert (str(info.value), info.value.prop) == (str(exc), exc.prop)
        return
    actual = m.forward(record)
    assert json.dumps(actual) == json.dumps(expected)  # the same keys, in the same order


def test_forward_names_the_row_of_a_bad_value_even_on_the_fast_path() -> None:
    m = mapper("avdeling-customer")
    with pytest.raises(MappingError) as info:
        m.forward({"Navn": "Salg", "Avdelingsleder": "boss", "Synlig": True})
    assert (info.value.prop, info.value.value) == ("Avdelingsleder", "boss")


def test_a_computed_row_that_cannot_be_evaluated_is_a_mapping_error() -> None:
    m = custom(COMPUTED)
    for project in (m.forward, m.project_source):
        with pytest.raises(MappingError, match=r"^custom.yaml:5: cannot evaluate \"join\(' ', \[Navn, Poststed\]\)\" "
                                               r"on Kunde record \(no id\): join\(\) cannot take null") as info:
            project({"Navn": "Fjordbygg AS"})  # Poststed missing: join() refuses null
        assert info.value.prop == "join(' ', [Navn, Poststed])"


def test_a_reverse_expression_that_cannot_be_evaluated_is_a_mapping_error() -> None:
    m = custom("  - source: \"join(' ', [Navn, Poststed])\"\n"
               "    target: name\n"
               "    type: string\n"
               "    reverse: {Navn: \"join(' ', [name, email])\"}\n")
    assert m.backward({"name": "A", "email": "b"}) == {"Navn": "A b"}
    with pytest.raises(MappingError, match=r"^custom.yaml:5: cannot evaluate \"join\(' ', \[name, email\]\)\" on "
                                           r"Customer record \(no id\): join\(\) cannot take null") as info:
        m.backward({"name": "A", "email": None})
    assert info.value.prop == "join(' ', [name, email])"


def test_a_create_body_carries_whole_nested_objects() -> None:
    avdeling = mapper("avdeling-customer")
    body = avdeling.with_whole_objects(avdeling.forward({"Navn": "Salg", "Adresse": "Gata 1", "Postnr": "0150"}))
    assert body["postal_address"] == {"line1": "Gata 1", "line2": None, "postal_code": "0150", "city": None}
    assert "delivery_address" not in body  # only objects the mapping writes are completed


def test_only_forward_rows_go_into_a_create() -> None:
    m = custom("""
  - {source: Navn, target: name, type: string}
  - {source: Telefon, target: phone, type: string, direction: reverse}
  - {source: Epost, target: email, type: string, direction: forward}""")
    assert m.creates_with == {"name", "email"}
