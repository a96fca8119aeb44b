"""Writes commit at once, or together at the end of transaction(); an exception undoes them all."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mapsync.errors import StateError
from mapsync.state import Link, StateStore


def link(n: int, target: str | None = None) -> Link:
    return Link("kunde", f"S{n}", target or f"T{n}", {"n": n}, {"n": n})


def test_a_transaction_commits_its_writes_together_at_the_end(
        store: StateStore, open_stores: Callable[[], StateStore]) -> None:
    other = open_stores()
    with store.transaction():
        store.put_link(link(1))
        store.set_cursor("kunde", "source", "c1")
        assert store.count_links("kunde") == 1  # the writer sees its own writes
        assert (other.count_links("kunde"), other.get_cursor("kunde", "source")) == (0, None)
    assert (other.count_links("kunde"), other.get_cursor("kunde", "source")) == (1, "c1")


def test_writes_outside_a_transaction_commit_at_once(
        store: StateStore, open_stores: Callable[[], StateStore]) -> None:
    other = open_stores()
    store.put_link(link(1))
    assert other.count_links("kunde") == 1


def test_an_exception_rolls_the_whole_transaction_back(store: StateStore) -> None:
    store.put_link(link(0))
    with pytest.raises(RuntimeError), store.transaction():
        store.put_link(link(1))
        store.delete_link("kunde", "S0")
        raise RuntimeError("executor crashed")

    assert [x.source_id for x in store.iter_links()] == ["S0"]
    store.put_link(link(2))  # the store is usable afterwards
    assert store.count_links("kunde") == 2


def test_a_nested_transaction_joins_the_outer_one(
        store: StateStore, open_stores: Callable[[], StateStore]) -> None:
    other = open_stores()
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.put_link(link(1))
        assert other.count_links("kunde") == 0  # leaving the inner block did not commit
        raise RuntimeError("later failure")

    assert store.count_links("kunde") == 0


def test_a_refused_link_inside_a_transaction_undoes_the_transaction(store: StateStore) -> None:
    with pytest.raises(StateError, match="already linked"), store.transaction():
        store.put_link(link(1))
        store.put_link(link(2, target="T1"))

    assert store.count_links("kunde") == 0
    store.put_link(link(3))
    assert store.count_links("kunde") == 1
