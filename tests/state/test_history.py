"""The history table on SQLite and PostgreSQL: batched recording, newest first by either side's id, a
limit, bounded pruning, and rows that roll back with the transaction they were recorded in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mapsync.errors import StateError
from mapsync.state import StateStore
from mapsync.state.base import HistoryEntry


def entry(source_id: str, target_id: str = "c1", *, kind: str = "update", at: str = "", **changes: object
          ) -> HistoryEntry:
    return HistoryEntry("kunde-customer", source_id, target_id, "target", kind, "changed in the source",
                        {prop: {"old": None, "new": value} for prop, value in changes.items()}, run_id="run-1", at=at)


def test_entries_come_back_newest_first_with_their_changes(store: StateStore) -> None:
    store.add_history([entry("K1", kind="create", name="Acme AS")])
    store.add_history([entry("K1", name="Acme Norge AS"), entry("K2", "c2", name="Other AS")])

    found = store.history_of("kunde-customer", "K1")

    assert [e.kind for e in found] == ["update", "create"]
    assert found[0].changes == {"name": {"old": None, "new": "Acme Norge AS"}}
    assert found[0].run_id == "run-1" and found[0].target_id == "c1" and found[0].side == "target"
    assert found[0].at >= found[1].at and found[0].id is not None and found[1].id is not None
    assert found[0].id > found[1].id


def test_a_target_id_finds_the_same_entries(store: StateStore) -> None:
    store.add_history([entry("K1", "c9", name="A"), entry("K2", "c9", name="B"), entry("K3", "c3", name="C")])

    assert [e.source_id for e in store.history_of("kunde-customer", "c9", side="target")] == ["K2", "K1"]
    assert store.history_of("kunde-customer", "c9") == []  # not a source id
    assert store.history_of("prosjekt-project", "K1") == []  # another dataflow's
    with pytest.raises(StateError, match="side must be source or target"):
        store.history_of("kunde-customer", "K1", side="both")


def test_limit_keeps_the_newest(store: StateStore) -> None:
    store.add_history([entry("K1", name=f"v{n}") for n in range(5)])

    newest = store.history_of("kunde-customer", "K1", limit=2)

    assert [e.changes["name"]["new"] for e in newest] == ["v4", "v3"]


def test_pruning_forgets_old_entries_a_bounded_batch_at_a_time(store: StateStore) -> None:
    old = [entry("K1", at=f"2020-01-0{day}T00:00:00.000000+00:00", name=day) for day in range(1, 6)]
    store.add_history([*old, entry("K1", name="recent")])
    store.add_history([])  # nothing to record: no statement
    cutoff = "2021-01-01T00:00:00.000000+00:00"

    assert store.prune_history("kunde-customer", cutoff, limit=3) == 3
    left = store.history_of("kunde-customer", "K1")
    assert [e.changes["name"]["new"] for e in left] == ["recent", 5, 4]  # the oldest went first
    assert store.prune_history("prosjekt-project", cutoff) == 0  # another dataflow's are its own
    assert store.prune_history("kunde-customer", cutoff) == 2
    assert store.prune_history("kunde-customer", cutoff) == 0
    assert [e.changes["name"]["new"] for e in store.history_of("kunde-customer", "K1")] == ["recent"]


def test_entries_roll_back_with_their_transaction(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_history([entry("K1", name="never")])
        raise RuntimeError("the group failed")

    assert store.history_of("kunde-customer", "K1") == []


def test_another_connection_sees_committed_entries(store: StateStore,
                                                   open_stores: Callable[[], StateStore]) -> None:
    values = {"name": "Ærlig Øl & Å AS", "tags": ["a", "b"], "n": 1.5, "none": None}
    store.add_history([HistoryEntry("kunde-customer", "K1", "c1", "source", "update", "why", {"all": values})])

    found = open_stores().history_of("kunde-customer", "K1")

    assert found[0].changes == {"all": values} and found[0].side == "source"
