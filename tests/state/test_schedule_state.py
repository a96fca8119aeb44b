"""The schedule the workers share (run_schedule) on SQLite and PostgreSQL: one entry per dataflow, replaced
whole, seen by another connection at once, rolled back with its transaction, and kept across an upgrade."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import pytest

from mapsync.state import Link, StateStore
from mapsync.state._migrations import MIGRATIONS, Migration
from mapsync.state._sql import SqlStore
from mapsync.state.base import ScheduleEntry
from mapsync.state.postgres import PostgresStore
from mapsync.state.sqlite import SqliteStore


def test_no_entry_until_a_run_is_recorded(store: StateStore) -> None:
    assert store.get_schedule("kunde-customer") is None
    assert store.iter_schedule() == []


def test_an_entry_is_replaced_whole_and_read_back_as_written(store: StateStore) -> None:
    store.put_schedule(ScheduleEntry("kunde-customer", worker="host-a pid 1"))
    begun = store.get_schedule("kunde-customer")
    assert begun is not None and (begun.status, begun.finished_at, begun.failures) == ("running", "", 0)
    assert datetime.fromisoformat(begun.started_at).tzinfo is not None  # stamped by the store: UTC

    ended = ScheduleEntry("kunde-customer", begun.started_at, "failed", "2026-01-02T03:04:05.000006+00:00",
                          failures=3, full_scan_at="2026-01-01T02:30:00.000000+00:00", worker="host-b pid 2")
    store.put_schedule(ended)
    store.put_schedule(ScheduleEntry("avdeling-customer", "2026-01-02T00:00:00.000000+00:00", "ok",
                                     "2026-01-02T00:00:01.000000+00:00"))

    assert store.get_schedule("kunde-customer") == ended
    assert [e.dataflow for e in store.iter_schedule()] == ["avdeling-customer", "kunde-customer"]


def test_another_connection_sees_the_entry_once_committed(store: StateStore,
                                                          open_stores: Callable[[], StateStore]) -> None:
    other = open_stores()
    with pytest.raises(RuntimeError), store.transaction():
        store.put_schedule(ScheduleEntry("kunde-customer", status="ok"))
        raise RuntimeError("rolled back")
    assert other.get_schedule("kunde-customer") is None

    with store.transaction():
        store.put_schedule(ScheduleEntry("kunde-customer", status="ok", failures=0))
    seen = other.get_schedule("kunde-customer")
    assert seen is not None and seen.status == "ok"


def test_a_store_from_before_the_table_is_upgraded_with_its_links_kept(store_url: str) -> None:
    adds = next(m.version for m in MIGRATIONS if any("run_schedule" in s for s in m.statements))
    with open_with(store_url, MIGRATIONS[:adds - 1]) as old:
        old.put_link(Link("kunde-customer", "K1", "c1"))
    with open_with(store_url, MIGRATIONS) as store:
        assert store.get_schedule("kunde-customer") is None
        store.put_schedule(ScheduleEntry("kunde-customer", status="ok"))
        assert store.count_links("kunde-customer") == 1


def open_with(url: str, migrations: Sequence[Migration]) -> SqlStore:
    if url.startswith("sqlite"):
        return SqliteStore.open(url, migrations=migrations)
    return PostgresStore.open(url, migrations=migrations)
