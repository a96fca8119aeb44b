"""Paging strategies: small objects that know the next request and when a listing is finished.

Each one also guards against a server that answers the same page again (a loop would otherwise list
forever): the same cursor twice, or the identical list of ids twice in a row, raise PagingError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mapsync.errors import PagingError

ONE_MS = timedelta(milliseconds=1)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 datetime, `...Z` or `...+02:00`, any fraction; a zoneless one is taken as UTC.

    Raises ValueError for anything else.
    """
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def utc_z(value: datetime) -> str:
    """The engine's timestamp form: UTC, milliseconds, `Z` (`2024-05-01T10:00:00.123Z`)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def filter_time(value: datetime) -> str:
    """A datetime for a query filter, keeping its own offset and any sub-millisecond digits."""
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    text = value.isoformat(timespec=spec)
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class LoopGuard:
    """Remembers the cursors seen and the previous page's ids of one listing."""

    def __init__(self, connection: str = "", path: str = "") -> None:
        self._connection = connection
        self._path = path
        self._cursors: set[str] = set()
        self._previous_ids: tuple[str, ...] = ()

    def check_cursor(self, cursor: str) -> None:
        if cursor in self._cursors:
            self._fail(f"the server sent the cursor {cursor!r} twice; stopping instead of looping")
        self._cursors.add(cursor)

    def check_page(self, ids: Sequence[str]) -> None:
        current = tuple(ids)
        if current and current == self._previous_ids:
            self._fail(f"the server sent the same page of {len(current)} records twice in a row")
        self._previous_ids = current

    def _fail(self, message: str) -> None:
        raise PagingError(message, connection=self._connection, method="GET", path=self._path)


class CursorPaging:
    """Follow `next_cursor` until the server sends none."""

    def __init__(self, connection: str = "", path: str = "") -> None:
        self.cursor: str | None = None
        self.finished = False
        self._guard = LoopGuard(connection, path)

    def advance(self, ids: Sequence[str], next_cursor: str | None) -> None:
        self._guard.check_page(ids)
        if next_cursor is None or next_cursor == "":
            self.finished = True
            return
        self._guard.check_cursor(next_cursor)
        self.cursor = next_cursor


@dataclass(frozen=True)
class KeysetRequest:
    """One page to ask for: records modified strictly after `after` (None: no filter), skipping `skip`."""

    after: datetime | None
    skip: int


@dataclass(frozen=True)
class _Seen:
    id: str
    modified: datetime


class KeysetPaging:
    """Timestamp-keyset paging over a set ordered by (modified, id) with a strict `gt` filter.

    Plain `$skip` paging loses records: one modified mid-scan jumps to the end, and every later record
    shifts one position back, under the skip. Here each query restarts just below the last timestamp
    seen (`gt T - 1 ms`), skipping only the records already read that sort before that point.

    Those few records can still move while we page (modified mid-scan), which would make the skip
    overshoot. So, when the page size allows, the skip stops one short: the first record of the next
    page must be the last one of this page (the anchor). If it is not, the block below has shifted,
    and it is read again from its start; records already yielded are filtered out by `is_new`.
    """

    def __init__(
        self,
        page_size: int,
        after: datetime | None,
        *,
        connection: str = "",
        path: str = "",
        max_restarts: int = 50,
    ) -> None:
        self.page_size = page_size
        self.finished = False
        self._after = after
        self._skip = 0
        self._anchor: str | None = None
        self._overlap = 1 if page_size > 1 else 0  # one record of overlap needs room for a new one
        self._tail: list[_Seen] = []  # records read by the current query that sort after its next bound
        self._seen: dict[tuple[str, datetime], None] = {}  # what was yielded, within the current window
        self._restarts = 0
        self._max_restarts = max_restarts
        self._guard = LoopGuard(connection, path)
        self._connection = connection
        self._path = path

    def next_request(self) -> KeysetRequest:
        return KeysetRequest(self._after, self._skip)

    def accept(self, page: Sequence[tuple[str, datetime]]) -> list[int]:
        """Take the answer to `next_request()`; return the indexes of the records not yielded before."""
        self._guard.check_page([record_id for record_id, _ in page])
        if self._block_shifted(page):
            self._restart_block()
            return []
        fresh = [i for i, (rid, ts) in enumerate(page) if (rid, ts) not in self._seen]
        for i in fresh:
            self._seen[page[i]] = None
        self._step(page)
        return fresh

    def _block_shifted(self, page: Sequence[tuple[str, datetime]]) -> bool:
        if self._anchor is None or self._skip == 0:
            # With no skip nothing can be overshot; a missing anchor then only means it moved itself.
            return False
        return not page or page[0][0] != self._anchor

    def _restart_block(self) -> None:
        self._restarts += 1
        if self._restarts > self._max_restarts:
            raise PagingError(
                f"the records kept changing while being listed ({self._max_restarts} restarts)",
                connection=self._connection,
                method="GET",
                path=self._path,
            )
        self._skip = 0
        self._anchor = None
        self._tail = []

    def _step(self, page: Sequence[tuple[str, datetime]]) -> None:
        if len(page) < self.page_size:
            self.finished = True
            return
        records = [_Seen(rid, ts) for rid, ts in page]
        merged = self._tail + records if self._overlap == 0 else self._merge_anchored(records)
        last = records[-1]
        bound = last.modified - ONE_MS
        if self._after is not None and bound < self._after:
            bound = self._after  # sub-millisecond timestamps: never step back below the current bound
        self._tail = [r for r in merged if r.modified > bound]
        if bound != self._after:
            self._seen = {key: None for key in self._seen if key[1] > bound}
        self._after = bound
        self._skip = len(self._tail) - self._overlap
        self._anchor = last.id if self._overlap else None

    def _merge_anchored(self, records: list[_Seen]) -> list[_Seen]:
        if self._anchor is not None and records[0].id == self._anchor:
            return self._tail + records[1:]
        # No anchor (first page, restarted block) or the anchor itself moved away: this page starts
        # the block afresh, and the old tail no longer describes the server's positions.
        return records


__all__ = [
    "CursorPaging",
    "KeysetPaging",
    "KeysetRequest",
    "LoopGuard",
    "filter_time",
    "parse_timestamp",
    "utc_z",
]
