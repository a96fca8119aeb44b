"""Cursors, pending creates, dead letters and manual conflicts."""

from __future__ import annotations

import pytest

from mapsync.errors import StateError
from mapsync.state import Conflict, DeadLetter, PendingCreate, StateStore


def test_cursors_are_kept_per_dataflow_and_side(store: StateStore) -> None:
    assert store.get_cursor("kunde", "source") is None

    store.set_cursor("kunde", "source", "2024-05-01T10:00:00")
    store.set_cursor("kunde", "target", "v17")
    store.set_cursor("kunde", "source", "2024-05-02T08:30:00")
    store.set_cursor("avdeling", "source", "x")

    assert store.get_cursor("kunde", "source") == "2024-05-02T08:30:00"
    assert store.get_cursor("kunde", "target") == "v17"

    store.set_cursor("kunde", "source", None)  # forget: the next run reads from the start
    assert store.get_cursor("kunde", "source") is None
    assert store.get_cursor("avdeling", "source") == "x"


def test_pending_creates_are_recorded_found_and_removed(store: StateStore) -> None:
    pending = PendingCreate("kunde", "target", "S1", "key-1")
    store.add_pending(pending)
    store.add_pending(pending)  # recording the same create again changes nothing
    store.add_pending(PendingCreate("avdeling", "source", "T9", "key-9"))

    found = store.get_pending("kunde", "target", "S1")
    assert found is not None
    assert (found.idempotency_key, bool(found.created_at)) == ("key-1", True)
    assert store.get_pending("kunde", "source", "S1") is None
    assert [p.record_id for p in store.iter_pending("kunde")] == ["S1"]
    assert len(list(store.iter_pending())) == 2

    store.remove_pending("kunde", "target", "S1")
    assert store.get_pending("kunde", "target", "S1") is None
    assert [p.dataflow for p in store.iter_pending()] == ["avdeling"]


def test_a_pending_create_keeps_its_idempotency_key(store: StateStore) -> None:
    store.add_pending(PendingCreate("kunde", "target", "S1", "key-1"))

    with pytest.raises(StateError, match="already pending with another idempotency key"):
        store.add_pending(PendingCreate("kunde", "target", "S1", "key-2"))

    found = store.get_pending("kunde", "target", "S1")
    assert found is not None and found.idempotency_key == "key-1"


def test_a_repeated_failure_counts_attempts_and_keeps_the_first_time(store: StateStore) -> None:
    store.add_dead_letter(DeadLetter("kunde", "target", "S1", "422: orgnr invalid", status=422))
    [first] = store.iter_dead_letters("kunde")
    assert (first.attempts, first.first_failed_at == first.last_failed_at) == (1, True)

    store.add_dead_letter(DeadLetter("kunde", "target", "S1", "503: unavailable", status=503))
    store.add_dead_letter(DeadLetter("kunde", "target", "S1", "value too long", status=None))

    [letter] = store.iter_dead_letters("kunde")
    assert (letter.reason, letter.status, letter.attempts) == ("value too long", None, 3)
    assert letter.first_failed_at == first.first_failed_at
    assert letter.last_failed_at > first.last_failed_at


def test_dead_letters_are_listed_per_dataflow_and_removed(store: StateStore) -> None:
    store.add_dead_letter(DeadLetter("kunde", "target", "S1", "bad"))
    store.add_dead_letter(DeadLetter("kunde", "source", "T1", "bad"))
    store.add_dead_letter(DeadLetter("avdeling", "target", "S1", "bad"))

    assert [(d.side, d.record_id) for d in store.iter_dead_letters("kunde")] == [("source", "T1"),
                                                                                 ("target", "S1")]
    store.remove_dead_letter("kunde", "target", "S1")
    assert [(d.dataflow, d.side) for d in store.iter_dead_letters()] == [("avdeling", "target"),
                                                                         ("kunde", "source")]


def test_conflicts_hold_any_json_value_one_per_property(store: StateStore) -> None:
    store.add_conflict(Conflict("kunde", "S1", "T1", "name", "Old", "New A", "New B"))
    store.add_conflict(Conflict("kunde", "S1", "T1", "tags", None, ["a"], {"b": [1, 2]}))
    store.add_conflict(Conflict("kunde", "S1", "T1", "name", "Old", "Newer A", "New B"))  # replaces
    store.add_conflict(Conflict("kunde", "S2", "T2", "active", True, False, 0))
    store.add_conflict(Conflict("avdeling", "S1", "T1", "name", "", "x", "y"))

    conflicts = list(store.iter_conflicts("kunde"))
    assert [(c.source_id, c.prop, c.base, c.source_value, c.target_value) for c in conflicts] == [
        ("S1", "name", "Old", "Newer A", "New B"),
        ("S1", "tags", None, ["a"], {"b": [1, 2]}),
        ("S2", "active", True, False, 0),
    ]
    assert all(c.detected_at for c in conflicts)

    store.remove_conflicts("kunde", "S1")
    assert [(c.dataflow, c.source_id) for c in store.iter_conflicts()] == [("avdeling", "S1"),
                                                                          ("kunde", "S2")]


def test_pending_creates_in_batches(store: StateStore) -> None:
    batch = [PendingCreate("kunde", "target", f"S{i}", f"key-{i}") for i in range(1200)]
    store.add_pendings(batch)
    store.add_pendings(batch[:3])  # the same creates again: nothing changes
    assert len(list(store.iter_pending("kunde"))) == 1200
    with pytest.raises(StateError, match="another idempotency key"):
        store.add_pendings([PendingCreate("kunde", "target", "S7", "key-other")])
    store.remove_pendings("kunde", "target", [f"S{i}" for i in range(1100)])
    assert sorted(p.record_id for p in store.iter_pending("kunde")) == sorted(f"S{i}" for i in range(1100, 1200))
    store.remove_pendings("kunde", "target", [])
