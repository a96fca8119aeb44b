"""create_id: the ids of records mapsync creates where the client chooses them (Tidsbanken), from a
template with a counter kept in the state store; an id another record holds is never linked, the create
takes the next one. Validate's refusals are corpus cases (tests/spec/corpus/create-id-*.yaml)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sync_harness import Harness

from mapsync.errors import ConflictError, MappingError
from mapsync.spec.create_id import fill_template, template_problem
from mapsync.spec.loader import load_workspace
from mapsync.state import open_store
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.create_ids import MAX_TRIES, CreateIds

TEMPLATE = {"source": {"template": "K{counter:05}"}}


# -- templates --------------------------------------------------------------------------------------

def test_a_template_fills_its_placeholders() -> None:
    assert fill_template("K{counter:05}", counter=42) == "K00042"
    assert fill_template("{value}-{counter}", counter=7, value="Fjordbygg") == "Fjordbygg-7"
    assert re.fullmatch(r"P-[0-9a-f]{8}", fill_template("P-{short}"))
    assert re.fullmatch(r"[0-9a-f]{32}", fill_template("{uuid}"))
    assert fill_template("{uuid}") != fill_template("{uuid}")
    assert fill_template("{{K}}{counter}", counter=1) == "{K}1"


@pytest.mark.parametrize("template", ["K{counter:05}", "{short}", "X-{value}-{uuid}", "{{{counter}}}"])
def test_good_templates(template: str) -> None:
    assert template_problem(template) is None


# -- the counter in the state store (SQLite and PostgreSQL) -----------------------------------------

def test_the_counter_counts_per_dataflow_and_side_and_survives_reopening(store_url: str) -> None:
    with open_store(store_url) as store:
        assert [store.take_counter("kunde-customer", "source") for _ in range(3)] == [1, 2, 3]
        assert store.take_counter("kunde-customer", "target") == 1
        assert store.take_counter("prosjekt-project", "source") == 1
    with open_store(store_url) as store:
        assert store.take_counter("kunde-customer", "source") == 4


def test_a_counter_taken_in_a_rolled_back_transaction_is_given_again(store_url: str) -> None:
    # Its pending create rolled back with it, so no request ever carried the id: giving it again is safe.
    with open_store(store_url) as store:
        assert store.take_counter("kunde-customer", "source") == 1
        with pytest.raises(RuntimeError), store.transaction():
            assert store.take_counter("kunde-customer", "source") == 2
            raise RuntimeError("crash before commit")
        assert store.take_counter("kunde-customer", "source") == 2


# -- keys of creates ---------------------------------------------------------------------------------

def _spec(workspace: Path, create_id: str) -> CreateIds:
    path = workspace / "mappings" / "kunde-customer.yaml"
    path.write_text(path.read_text().replace("create: target", f"create: both\ncreate_id:\n{create_id}"))
    spec = load_workspace(workspace / "mapsync.yaml", env={}).dataflows["kunde-customer"]
    return CreateIds(spec, open_store("sqlite:///" + str(workspace / "state.db")))


def test_value_comes_from_the_record_being_created(workspace: Path) -> None:
    ids = _spec(workspace, '  source: {template: "{value}-{counter}", expression: "upper(Navn)"}')
    assert ids.new_key("source", "c1", {"Navn": "Fjordbygg AS"}) == "FJORDBYGG AS-1"
    with pytest.raises(MappingError, match=r"mappings/kunde-customer.yaml:9: create_id.source.expression "
                                           r"'upper\(Navn\)' gives None for the record being created"):
        ids.new_key("source", "c2", {"Navn": None})
    assert ids.new_key("target", "k1", {}).startswith("mapsync-kunde-customer-")  # no entry: random


def test_a_refused_id_is_replaced_a_few_times_then_the_create_fails(workspace: Path) -> None:
    ids = _spec(workspace, '  source: {template: "K{counter}"}')
    create = Action(ActionKind.CREATE, "kunde-customer", side="source", target_id="c1")
    taken = ConflictError("Kunde 'K1' exists already", connection="tidsbanken", status=409)
    assert not ids.try_again(create, taken)  # no id made for it in this run: an earlier run's may be ours
    for tries in range(1, MAX_TRIES + 1):
        ids.new_key("source", "c1", {})
        assert ids.try_again(create, taken) is (tries < MAX_TRIES)
        assert ids.gave_up(create, taken) is (tries == MAX_TRIES)
    assert not ids.try_again(create, None)


# -- end to end: the emulators over HTTP ------------------------------------------------------------

@pytest.fixture
def empty(make_harness: Callable[..., Harness], state_url: str) -> Harness:
    return make_harness(state_url, seed=None)


def test_creates_in_tidsbanken_take_ids_from_the_template(empty: Harness) -> None:
    h = empty
    h.set_mapping("kunde-customer", create="both", create_id=TEMPLATE)
    for name in ("Fjordbygg AS", "Nordlys AS", "Havbris AS"):
        h.sb.custompms.create("customers", {"name": name, "kind": "customer", "active": True})
    # Someone else's Kunde already holds the second id the counter gives.
    h.sb.tidsbanken.put("Kunde", {"Id": "K00002", "Navn": "Fremmed AS", "Aktiv": True})

    run = h.apply()
    assert run.exit_code == 0, run.output
    kunder = {k["Id"]: k["Navn"] for k in h.sb.tidsbanken.records("Kunde")}
    assert kunder["K00002"] == "Fremmed AS"  # never taken as ours, never changed
    ours = {i: n for i, n in kunder.items() if i != "K00002"}
    assert sorted(ours) == ["K00001", "K00003", "K00004"]
    assert sorted(ours.values()) == ["Fjordbygg AS", "Havbris AS", "Nordlys AS"]
    # every link pairs a Kunde with the Customer of its name; the stranger got a Customer of its own
    customers = {c["id"]: c["name"] for c in h.sb.custompms.records("customers")}
    links = h.links("kunde-customer")
    assert {kunder[s]: customers[t] for s, t in links.items()} == {n: n for n in kunder.values()}
    assert list(h.store().iter_pending("kunde-customer")) == []

    again = h.apply()
    assert again.exit_code == 0, again.output
    assert again.counts("kunde-customer")["created"] == 0
    assert again.counts("kunde-customer")["updated"] == 0
    h.sb.custompms.create("customers", {"name": "Ny AS", "kind": "customer"})
    assert h.apply().exit_code == 0
    assert h.sb.tidsbanken.get("Kunde", "K00005")["Navn"] == "Ny AS"  # the counter goes on from the store


def test_a_prefix_someone_else_uses_fails_the_record_and_names_no_record(empty: Harness) -> None:
    h = empty
    h.set_mapping("kunde-customer", create="both", create_id={"source": {"template": "K{counter}"}})
    for n in range(1, MAX_TRIES + 1):
        h.sb.tidsbanken.put("Kunde", {"Id": f"K{n}", "Navn": f"Fremmed {n}"})
    h.sb.custompms.create("customers", {"name": "Fjordbygg AS", "kind": "customer"})

    run = h.apply()
    assert run.exit_code == 1
    assert run.counts("kunde-customer")["failed"] == 1
    assert f"K{MAX_TRIES}" in run.output
    assert all(k["Navn"].startswith("Fremmed") for k in h.sb.tidsbanken.records("Kunde"))
    assert list(h.store().iter_pending("kunde-customer")) == []  # every id was refused: a fresh start

    retried = h.apply()  # the next run goes on counting, past the ids others hold
    assert retried.exit_code == 0, retried.output
    assert h.sb.tidsbanken.get("Kunde", f"K{MAX_TRIES + 1}")["Navn"] == "Fjordbygg AS"
