"""Property-based: every two-way row of the reference mappings survives a round trip.

Source records are generated from the entity schemas (Tidsbanken's own representation: "" for an empty
string, dates as local midnight with that day's Oslo offset, integers, booleans); forward then backward
must give them back unchanged. Canonical values (Custompms's representation) must survive backward
then forward.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapsync.mapping.mapper import DictLinks, Mapper
from mapsync.spec.entities import property_schema
from mapsync.spec.loader import load_workspace
from mapsync.spec.model import DataflowSpec, Row

REPO = Path(__file__).parents[2]
WORKSPACE = load_workspace(REPO / "mapsync.yaml", env={})
SPECS = list(WORKSPACE.dataflows.values())
OSLO = ZoneInfo("Europe/Oslo")

# Deterministic, and no example database written into the working tree.
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None)

DAYS = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
IDS = st.text(alphabet="ABCDEFGHKP0123456789-", min_size=1, max_size=12)
TEXT = st.text(max_size=40)  # anything, "" included, whitespace included


def two_way(spec: DataflowSpec) -> list[Row]:
    return [row for row in spec.rows if row.flows_forward and row.flows_back and row.source_path]


def local_midnight(day: date) -> str:
    return datetime.combine(day, time(0), tzinfo=OSLO).isoformat()


def source_strategy(row: Row, prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = prop.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    nullable = "null" in kinds
    if row.type == "reference":
        value: st.SearchStrategy[Any] = IDS
    elif row.type == "date":
        value = DAYS.map(local_midnight)
    elif row.type == "integer":
        value = st.integers(min_value=-(2**53), max_value=2**53)
    elif row.type == "boolean":
        value = st.booleans()
    else:
        assert row.type == "string", row
        value = TEXT
    return st.one_of(st.none(), value) if nullable else value


def canonical_strategy(row: Row) -> st.SearchStrategy[Any]:
    value: st.SearchStrategy[Any] = {
        "reference": IDS,
        "date": DAYS.map(date.isoformat),
        "integer": st.integers(min_value=-(2**53), max_value=2**53),
        "boolean": st.booleans(),
        "string": st.text(min_size=1, max_size=40),
    }[row.type]
    return st.one_of(st.none(), value)


def source_records(spec: DataflowSpec) -> st.SearchStrategy[dict[str, Any]]:
    fields = {row.source_path: source_strategy(row, property_schema(spec.source_schema, row.source_path) or {})
              for row in two_way(spec) if row.source_path}
    return st.fixed_dictionaries(fields)


def links_for(spec: DataflowSpec, source: dict[str, Any]) -> DictLinks:
    """Links for every id the record refers to: source id X is target id t-X."""
    pairs: dict[str, dict[str, str]] = {}
    for row in spec.rows:
        if row.type == "reference" and row.dataflow and source.get(row.source_path or ""):
            pairs.setdefault(row.dataflow, {})[source[row.source_path or ""]] = f"t-{source[row.source_path or '']}"
    return DictLinks(pairs)


def test_every_reference_mapping_has_two_way_rows() -> None:
    assert {spec.name: len(two_way(spec)) for spec in SPECS} == {
        "avdeling-customer": 7, "kunde-customer": 15, "prosjekt-project": 10}


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_source_survives_forward_then_backward(spec: DataflowSpec) -> None:
    mapper = Mapper(spec)

    @FAST
    @given(source_records(spec))
    def round_trip(source: dict[str, Any]) -> None:
        links = links_for(spec, source)
        target = mapper.forward(source, links)
        assert mapper.backward(target, links) == source

    round_trip()


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_canonical_values_survive_backward_then_forward(spec: DataflowSpec) -> None:
    mapper = Mapper(spec)
    values = st.fixed_dictionaries({row.target: canonical_strategy(row) for row in two_way(spec)})

    @FAST
    @given(values)
    def round_trip(canonical: dict[str, Any]) -> None:
        pairs: dict[str, dict[str, str]] = {}
        for row in two_way(spec):
            if row.type == "reference" and row.dataflow and canonical[row.target] is not None:
                pairs.setdefault(row.dataflow, {})[f"s-{canonical[row.target]}"] = canonical[row.target]
        links = DictLinks(pairs)
        target = mapper.target_record(canonical)
        source = mapper.backward(target, links)
        assert mapper.project_source(source, links) == canonical
        assert mapper.project_target(target) == canonical

    round_trip()


@FAST
@given(DAYS)
def test_every_day_goes_back_to_its_own_local_midnight(day: date) -> None:
    spec = WORKSPACE.dataflows["prosjekt-project"]
    mapper = Mapper(spec)
    back = mapper.source_changes({"start_date": day.isoformat()}, {"start_date"})["StartDato"]
    moment = datetime.fromisoformat(back)
    assert (moment.date(), moment.time()) == (day, time(0))
    assert moment.utcoffset() == datetime.combine(day, time(0), tzinfo=OSLO).utcoffset()
    assert mapper.project_source({"StartDato": back})["start_date"] == day.isoformat()
