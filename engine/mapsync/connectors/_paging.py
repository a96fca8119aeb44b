"""Paging strategies: small objects that know the next request and when a listing is finished.

Each one also guards against a server that answers the same page again (a loop would otherwise list
forever): the same cursor twice, or the identical list of ids twice in a row, raise PagingError. A server
whose pages are always new (fresh records or a fresh cursor every time) is stopped by `PageCap`.
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

    def check_page(self, ids: Sequence[str], *, enforce: bool = True) -> None:
        current = tuple(ids)
        if enforce and current and current == self._previous_ids:
            self._fail(f"the server sent the same page of {len(current)} records twice in a row")
        self._previous_ids = current

    def _fail(self, message: str) -> None:
        raise PagingError(message, connection=self._connection, method="GET", path=self._path)


class PageCap:
    """A sanity cap on the pages of one listing: a server whose paging never ends (fresh records or a
    fresh cursor on every page) would otherwise keep a run reading, and planning, forever."""

    def __init__(self, max_pages: int, entity: str, *, connection: str = "", path: str = "") -> None:
        self._max_pages = max_pages
        self._entity = entity
        self._connection = connection
        self._path = path
        self._pages = 0

    def next_page(self) -> None:
        """Call before requesting each page; raises PagingError instead of requesting one past the cap."""
        if self._pages >= self._max_pages:
            raise PagingError(
                f"listing {self._entity} stopped after {self._pages} pages (max_pages); "
                "the server's paging never ends",
                connection=self._connection,
                method="GET",
                path=self._path,
            )
        self._pages += 1


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


@dataclass
class _Run:
    """Consecutive positions of a query that share one timestamp."""

    modified: datetime
    count: int


class KeysetPaging:
    """Timestamp-keyset paging over a set ordered by (modified, id) with a strict `gt` filter.

    Plain `$skip` paging loses records: one modified mid-scan jumps to the end, and every later record
    shifts one position back, under the skip. Here each query restarts just below the last timestamp
    seen (`gt T - 1 ms`), skipping only the records already read that sort after that bound: records
    that share an instant with the last one, usually none or a few.

    Those few can still move while we page (modified mid-scan), which would make the skip overshoot.
    So the skip stops `overlap` records short, and the last record yielded (the anchor) must be found
    in the next page: what follows it is new. If it is missing, the block has shifted too far (or the
    anchor itself moved): the block is read again from its start. That rare re-read may repeat some
    records (the engine tolerates repeats); in exchange the pager keeps no set of ids, so its memory
    stays flat however many records a listing holds, or share one instant.
    """

    def __init__(
        self,
        page_size: int,
        after: datetime | None,
        *,
        connection: str = "",
        path: str = "",
        overlap: int = 8,
        max_restarts: int = 50,
    ) -> None:
        self.page_size = page_size
        self.finished = False
        self._after = after
        self._skip = 0
        self._anchor: str | None = None
        # At most half a page, so that even inside a block of one instant each page brings new records.
        self._overlap = max(0, min(overlap, page_size // 2))
        self._runs: list[_Run] = []  # timestamps of the current query's first positions, run-length coded
        self._restarts = 0
        self._restarted = False
        self._max_restarts = max_restarts
        self._guard = LoopGuard(connection, path)
        self._connection = connection
        self._path = path

    def next_request(self) -> KeysetRequest:
        return KeysetRequest(self._after, self._skip)

    def accept(self, page: Sequence[tuple[str, datetime]]) -> list[int]:
        """Take the answer to `next_request()`; return the indexes of the records to yield."""
        # After a restart the same page may come back for real: the data moved, not the server.
        self._guard.check_page([record_id for record_id, _ in page], enforce=not self._restarted)
        first_new = self._first_new(page)
        self._restarted = first_new is None
        if first_new is None:
            self._restart_block()
            return []
        self._step(page)
        return list(range(first_new, len(page)))

    def _first_new(self, page: Sequence[tuple[str, datetime]]) -> int | None:
        """Index of the first record not yielded yet; None when the block must be read again."""
        if self._anchor is None:
            return 0
        for index, (record_id, _) in enumerate(page):
            if record_id == self._anchor:
                return index + 1
        # With no skip nothing can have been overshot: the anchor itself moved away.
        return 0 if self._skip == 0 else None

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
        self._runs = []

    def _step(self, page: Sequence[tuple[str, datetime]]) -> None:
        if len(page) < self.page_size:
            self.finished = True
            return
        last_id, last_modified = page[-1]
        bound = last_modified - ONE_MS
        if self._after is not None and bound < self._after:
            bound = self._after  # sub-millisecond timestamps: never step back below the current bound
        runs = _first_positions(self._runs, self._skip)
        for _, modified in page:
            _append(runs, modified)
        # The next query starts at the first record after `bound`: these runs are its first positions.
        self._runs = [run for run in runs if run.modified > bound]
        already_read = sum(run.count for run in self._runs)
        self._skip = max(0, already_read - self._overlap)
        self._anchor = last_id if self._overlap else None
        self._after = bound


def _first_positions(runs: list[_Run], count: int) -> list[_Run]:
    kept: list[_Run] = []
    for run in runs:
        if count <= 0:
            break
        kept.append(_Run(run.modified, min(run.count, count)))
        count -= run.count
    return kept


def _append(runs: list[_Run], modified: datetime) -> None:
    if runs and runs[-1].modified == modified:
        runs[-1].count += 1
    else:
        runs.append(_Run(modified, 1))


__all__ = [
    "CursorPaging",
    "KeysetPaging",
    "KeysetRequest",
    "LoopGuard",
    "PageCap",
    "filter_time",
    "parse_timestamp",
    "utc_z",
]
