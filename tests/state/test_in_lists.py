"""Issue 15: lookups by a list of ids use a few statement texts whatever the list's length, so the
drivers' caches of prepared statements stay small in a long run; the answers are those asked for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from mapsync.state import StateStore
from mapsync.state._sql import SqlStore
from mapsync.state.base import Link, PendingCreate


def spy_statements(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    assert isinstance(store, SqlStore)
    texts: set[str] = set()
    query: Callable[[str, Sequence[Any]], list[Any]] = store._query

    def spied(sql: str, params: Sequence[Any] = ()) -> list[Any]:
        texts.add(sql)
        return query(sql, params)

    monkeypatch.setattr(store, "_query", spied)
    return texts


def test_links_by_any_number_of_ids_use_a_few_statements(store: StateStore, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    with store.transaction():
        store.put_links([Link("flow", f"s{i}", f"t{i}") for i in range(0, 600, 2)])
    texts = spy_statements(store, monkeypatch)

    for count in range(1, 601, 7):
        asked = [f"s{i}" for i in range(count)]
        found = store.get_links("flow", source_ids=asked)
        assert [link.source_id for link in found] == sorted(f"s{i}" for i in range(0, count, 2))
        by_target = store.get_links("flow", target_ids=[f"t{i}" for i in range(count)])
        assert [link.source_id for link in by_target] == [link.source_id for link in found]

    assert len(texts) <= 2 * 10  # per column: lengths 1, 2, 4, ..., 256 and 500


def test_removing_some_pendings_removes_those_only(store: StateStore) -> None:
    store.add_pendings([PendingCreate("flow", "target", f"r{i}", f"key-{i}") for i in range(5)])

    store.remove_pendings("flow", "target", ["r0", "r1", "r3"])  # padded to 4 with the last id repeated

    assert sorted(p.record_id for p in store.iter_pending("flow")) == ["r2", "r4"]
