"""Issue 15: the reference link cache is bounded, so a run's memory stays flat however many records it
links; what it lets go of is read back from the state store, with the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_harness import Harness

from mapsync.state import StateStore, open_store
from mapsync.state.base import Link
from mapsync.sync import lookup
from mapsync.sync.lookup import StoreLinks


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = open_store("sqlite:///" + str(tmp_path / "state.db"))
    yield opened
    opened.close()


def linked(store: StateStore, count: int) -> list[Link]:
    links = [Link("kunde-customer", f"K{i}", f"c-{i}") for i in range(count)]
    with store.transaction():
        store.put_links(links)
    return links


def test_the_cache_holds_at_most_its_size_and_the_store_answers_the_rest(store: StateStore) -> None:
    links = StoreLinks(store, cache_size=5)
    for link in linked(store, 40):
        links.learn(link.dataflow, link.source_id, link.target_id)
    links.prefetch("kunde-customer", [f"K{i}" for i in range(40)] + ["K-none"])

    assert links.cached <= 10
    assert [links.to_target("kunde-customer", f"K{i}") for i in range(40)] == [f"c-{i}" for i in range(40)]
    assert [links.to_source("kunde-customer", f"c-{i}") for i in range(40)] == [f"K{i}" for i in range(40)]
    assert links.to_target("kunde-customer", "K-none") is None
    assert links.cached <= 10


def test_an_id_looked_up_and_not_linked_resolves_once_learned_and_not_once_forgotten(store: StateStore) -> None:
    links = StoreLinks(store, cache_size=3)
    links.prefetch("kunde-customer", ["K1"])
    assert links.to_target("kunde-customer", "K1") is None

    links.learn("kunde-customer", "K1", "c-1")  # made in this run, before the store has it
    assert (links.to_target("kunde-customer", "K1"), links.to_source("kunde-customer", "c-1")) == ("c-1", "K1")
    links.forget("kunde-customer", "K1", "c-1")
    assert (links.to_target("kunde-customer", "K1"), links.to_source("kunde-customer", "c-1")) == (None, None)


def test_references_resolve_when_the_cache_holds_far_fewer_links_than_the_run_makes(
        hs: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup, "CACHE_SIZE", 2)

    assert hs.apply().exit_code == 0

    customers = hs.links("kunde-customer")
    projects = {p["Id"]: p for p in hs.sb.tidsbanken.records("Prosjekt")}
    checked = 0
    for prosjekt_id, project_id in hs.links("prosjekt-project").items():
        project = hs.sb.custompms.get("projects", project_id)
        assert project is not None
        kunde = projects[prosjekt_id]["KundeId"]
        if kunde:
            assert project["customer_id"] == customers[kunde]
            checked += 1
    assert checked > 10
    assert hs.apply().counts("prosjekt-project")["updated"] == 0  # and the next run sees them as synced
