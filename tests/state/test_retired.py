"""Retired links (what a removed link knew) and the delete guard's baseline."""

from __future__ import annotations

from mapsync.state import StateStore
from mapsync.state.base import GuardBaseline, Link, RetiredLink


def retired(n: int, dataflow: str = "prosjekt", **changes: object) -> RetiredLink:
    entry = RetiredLink(dataflow, f"S{n}", f"T{n}", {"name": f"P {n}", "tags": ["ø"]}, {"name": f"P {n}"},
                        source_version=f"v{n}", target_version="3", gone="source")
    for key, value in changes.items():
        setattr(entry, key, value)
    return entry


def test_a_retired_link_reads_back_by_either_id(store: StateStore) -> None:
    entry = retired(1)
    store.retire_link(entry)
    [by_source] = store.retired_by_source("prosjekt", ["S1", "S9"])
    assert by_source.retired_at  # stamped by the store
    by_source.retired_at = ""
    assert by_source == entry
    assert store.retired_by_target("prosjekt", ["T1"]) == store.retired_by_source("prosjekt", ["S1"])
    assert store.retired_by_source("other", ["S1"]) == []
    assert by_source.as_link() == Link("prosjekt", "S1", "T1", entry.source_values, entry.target_values, "v1", "3")


def test_retiring_again_replaces_the_entry_of_the_source_and_any_naming_the_same_target(store: StateStore) -> None:
    store.retire_link(retired(1))
    store.retire_link(retired(2))
    store.retire_link(retired(1, target_id="T9", gone="target"))
    store.retire_link(retired(3, target_id="T2"))
    assert {(e.source_id, e.target_id, e.gone) for e in store.iter_retired("prosjekt")} == {
        ("S1", "T9", "target"), ("S3", "T2", "source")}


def test_counting_and_dropping(store: StateStore) -> None:
    for n, stamp in ((1, "2024-01-01T00:00:00+00:00"), (2, "2024-02-01T00:00:00+00:00"),
                     (3, "2024-03-01T00:00:00+00:00")):
        store.retire_link(retired(n, retired_at=stamp))
    store.retire_link(retired(4, dataflow="kunde"))
    assert store.count_retired("prosjekt") == 3
    assert store.count_retired("prosjekt", since="2024-02-01T00:00:00+00:00") == 2
    assert store.drop_retired_before("prosjekt", "2024-02-01T00:00:00+00:00") == 1
    store.drop_retired("prosjekt", source_ids=["S2"], target_ids=["T3", "T4"])
    assert list(store.iter_retired("prosjekt")) == []
    assert [e.source_id for e in store.iter_retired()] == ["S4"]


def test_dropping_many_ids_at_once(store: StateStore) -> None:
    with store.transaction():
        for n in range(1200):
            store.retire_link(retired(n))
    store.drop_retired("prosjekt", source_ids=[f"S{n}" for n in range(0, 1200, 2)],
                       target_ids=[f"T{n}" for n in range(1, 1100, 2)])
    assert sorted(e.source_id for e in store.iter_retired("prosjekt")) == sorted(f"S{n}" for n in range(1101, 1200, 2))


def test_the_guard_baseline_is_one_row_per_dataflow(store: StateStore) -> None:
    assert store.get_guard_baseline("prosjekt") is None
    store.set_guard_baseline(GuardBaseline("prosjekt", 30, "2024-01-01T00:00:00+00:00"))
    store.set_guard_baseline(GuardBaseline("prosjekt", 28))
    baseline = store.get_guard_baseline("prosjekt")
    assert baseline is not None and baseline.links == 28 and baseline.confirmed_at > "2024-01-01T00:00:00+00:00"
    assert store.get_guard_baseline("kunde") is None
