"""Paging strategies on their own: loop detection, and keyset paging against an in-memory table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mapsync.connectors._paging import (
    CursorPaging,
    KeysetPaging,
    KeysetRequest,
    filter_time,
    parse_timestamp,
    utc_z,
)
from mapsync.errors import PagingError

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_cursor_paging_follows_until_null() -> None:
    pager = CursorPaging()
    pager.advance(["a", "b"], "c1")
    assert pager.cursor == "c1"
    pager.advance(["c", "d"], "c2")
    pager.advance(["e"], None)
    assert pager.finished


def test_cursor_paging_refuses_the_same_cursor_twice() -> None:
    pager = CursorPaging("custompms", "/api/v1/customers")
    pager.advance(["a"], "c1")
    pager.advance(["b"], "c2")
    with pytest.raises(PagingError, match="cursor 'c1' twice") as info:
        pager.advance(["c"], "c1")
    assert info.value.path == "/api/v1/customers"


def test_cursor_paging_refuses_the_same_page_twice_in_a_row() -> None:
    pager = CursorPaging()
    pager.advance(["a", "b"], "c1")
    with pytest.raises(PagingError, match="same page"):
        pager.advance(["a", "b"], "c2")


class Table:
    """A server-side set ordered by (modified, id) that answers `gt after` with `$top`/`$skip`."""

    def __init__(self, rows: dict[str, datetime]) -> None:
        self.rows = dict(rows)

    def query(self, request: KeysetRequest, top: int) -> list[tuple[str, datetime]]:
        ordered = sorted(((ts, rid) for rid, ts in self.rows.items()), key=lambda row: row)
        matching = [(rid, ts) for ts, rid in ordered if request.after is None or ts > request.after]
        return matching[request.skip : request.skip + top]


def drain(table: Table, page_size: int, after: datetime | None = None, on_page=None) -> list[str]:
    pager = KeysetPaging(page_size, after)
    seen: list[str] = []
    pages = 0
    while not pager.finished:
        page = table.query(pager.next_request(), page_size)
        seen.extend(page[i][0] for i in pager.accept(page))
        pages += 1
        if on_page is not None:
            on_page(pages, table)
        assert pages < 1000
    return seen


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 10, 11, 100])
def test_keyset_lists_everything_once(page_size: int) -> None:
    rows = {f"r{i:03}": T0 + timedelta(seconds=i // 3) for i in range(30)}  # triples share an instant
    assert sorted(drain(Table(rows), page_size)) == sorted(rows)


@pytest.mark.parametrize("page_size", [1, 2, 5, 50])
def test_keyset_survives_a_block_larger_than_a_page_at_one_instant(page_size: int) -> None:
    rows = {f"r{i:03}": T0 for i in range(23)}
    found = drain(Table(rows), page_size)
    assert sorted(found) == sorted(rows)
    assert len(found) == len(set(found))


def test_keyset_empty_and_exact_pages() -> None:
    assert drain(Table({}), 5) == []
    rows = {f"r{i}": T0 + timedelta(seconds=i) for i in range(5)}
    assert drain(Table(rows), 5) == sorted(rows)


def test_keyset_with_a_lower_bound() -> None:
    rows = {f"r{i}": T0 + timedelta(seconds=i) for i in range(10)}
    assert drain(Table(rows), 3, after=T0 + timedelta(seconds=4, milliseconds=500)) == [
        "r5",
        "r6",
        "r7",
        "r8",
        "r9",
    ]


@pytest.mark.parametrize("page_size", [2, 3, 4, 10])
def test_keyset_does_not_lose_records_modified_during_the_scan(page_size: int) -> None:
    rows = {f"r{i:02}": T0 + timedelta(seconds=i // 4) for i in range(40)}
    original = set(rows)
    clock = [T0 + timedelta(hours=1)]

    def modify_early_records(page: int, table: Table) -> None:
        # After each page, a record already read (and one at the current edge) moves to the end.
        for victim in (f"r{page - 1:02}", f"r{page * page_size - 1:02}"):
            if victim in table.rows:
                clock[0] += timedelta(milliseconds=1)
                table.rows[victim] = clock[0]

    found = drain(Table(rows), page_size, on_page=modify_early_records)
    assert set(found) == original


def test_keyset_detects_a_server_that_ignores_paging() -> None:
    pager = KeysetPaging(2, None)
    page = [("a", T0), ("b", T0 + timedelta(seconds=1))]
    pager.accept(page)
    with pytest.raises(PagingError):
        for _ in range(5):
            pager.accept(page)


def test_timestamps_both_forms() -> None:
    assert utc_z(parse_timestamp("2024-05-01T12:00:00.123+02:00")) == "2024-05-01T10:00:00.123Z"
    assert utc_z(parse_timestamp("2024-05-01T10:00:00Z")) == "2024-05-01T10:00:00.000Z"
    assert utc_z(parse_timestamp("2024-05-01T10:00:00.1234567Z")) == "2024-05-01T10:00:00.123Z"
    assert utc_z(parse_timestamp("2024-05-01T10:00:00")) == "2024-05-01T10:00:00.000Z"
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def test_filter_time_keeps_the_offset_and_precision() -> None:
    local = parse_timestamp("2024-05-01T12:00:00.123+02:00")
    assert filter_time(local - timedelta(milliseconds=1)) == "2024-05-01T12:00:00.122+02:00"
    assert filter_time(T0) == "2024-05-01T10:00:00.000Z"
    assert filter_time(T0 + timedelta(microseconds=5)) == "2024-05-01T10:00:00.000005Z"


@pytest.mark.parametrize("page_size", [2, 3, 5, 10])
def test_keyset_in_one_instant_survives_moves_of_anchors_and_earlier_records(page_size: int) -> None:
    rows = {f"r{i:02}": T0 for i in range(30)}
    original = set(rows)
    clock = [T0 + timedelta(hours=1)]
    read: list[str] = []

    def move_some(page: int, table: Table) -> None:
        # Move the most recently read record (often the anchor) and an early one to the end.
        for victim in (read[-1] if read else None, f"r{page:02}"):
            if victim in table.rows and table.rows[victim] == T0:
                clock[0] += timedelta(milliseconds=1)
                table.rows[victim] = clock[0]

    pager = KeysetPaging(page_size, None)
    table = Table(rows)
    pages = 0
    while not pager.finished:
        page = table.query(pager.next_request(), page_size)
        read.extend(page[i][0] for i in pager.accept(page))
        pages += 1
        move_some(pages, table)
        assert pages < 500
    assert set(read) == original


def test_keyset_memory_stays_flat_in_a_huge_block_at_one_instant() -> None:
    rows = {f"r{i:05}": T0 for i in range(5000)}
    table = Table(rows)
    pager = KeysetPaging(100, None)
    count = 0
    while not pager.finished:
        page = table.query(pager.next_request(), 100)
        count += len(pager.accept(page))
        assert len(pager._runs) <= 2
    assert count == 5000
