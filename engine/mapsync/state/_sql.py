"""The store the SQLite and PostgreSQL backends share (its schema is in _migrations, its rows in _rows).

`SqlStore` implements every `StateStore` method once, in SQL that both databases accept (upserts with
`ON CONFLICT`, row-value comparisons for keyset paging). A backend subclass supplies only what differs
between dialects and drivers: how a statement is executed (and its placeholder style), how a transaction
begins and ends, what runs before a migration, and how the run lock is held.

The run lock is fenced once for both backends (in _lock): taking a lock bumps its generation in
`lock_fences`, and the `FencedLock` a run holds checks, before each write, that the backend still holds
the lock for it and that the generation is still the one it took.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, TypeVar

from mapsync.errors import StateError
from mapsync.state._compact import CompactLinksMixin, marker_of
from mapsync.state._history import HistoryMixin
from mapsync.state._lock import FencedLock, LockProbe, UniqueViolation
from mapsync.state._migrations import (
    META_TABLE,
    MIGRATIONS,
    SCHEMA_VERSION_KEY,
    Dialect,
    Migration,
    check_migrations,
    newer_schema_error,
)
from mapsync.state._rows import (
    ADD_CONFLICT,
    ADD_DEAD_LETTER,
    ADD_PENDING,
    BUMP_FENCE,
    CONFLICT_COLUMNS,
    CONFLICT_KEY,
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_KEY,
    LINK_COLUMNS,
    LINK_KEY,
    PENDING_COLUMNS,
    PENDING_KEY,
    PUT_LINK,
    PUT_RETIRED,
    RETIRED_COLUMNS,
    SELECT_LINKS,
    SELECT_RETIRED,
    SELECT_TARGET_MARKERS,
    SET_BASELINE,
    SET_CURSOR,
    Row,
    column_list,
    conflict_to_row,
    dead_letter_to_row,
    keyset_pages,
    now_iso,
    pending_to_row,
    placeholders,
    row_to_conflict,
    row_to_dead_letter,
    row_to_pending,
    upsert,
)
from mapsync.state._schedule import ScheduleMixin
from mapsync.state._tails import TailsMixin
from mapsync.state.base import Conflict, DeadLetter, GuardBaseline, Link, PendingCreate, RetiredLink, RunLock

StoreT = TypeVar("StoreT", bound="SqlStore")

# SQLite and PostgreSQL both accept far more bound parameters than this; 500 keeps each statement small
# enough to plan quickly and still turns 30,000 lookups into 60 round trips.
ID_CHUNK = 500


def in_list(ids: Sequence[Any]) -> tuple[str, list[Any]]:
    """The placeholders and parameters of `IN (...)` for 1 to ID_CHUNK ids, padded to a power of two (at
    most ID_CHUNK) by repeating the last id, which matches nothing more. The drivers keep each statement
    text prepared (SQLite ~0.2 KB per parameter, 128 statements): one text per list length filled that
    cache with ~10 MB in a long run; a few lengths keep it small and the statements reused."""
    size = min(ID_CHUNK, 1 << (len(ids) - 1).bit_length())
    padded = [*ids, *[ids[-1]] * (size - len(ids))]
    return placeholders(size), padded


class SqlStore(HistoryMixin, CompactLinksMixin, TailsMixin, ScheduleMixin, ABC):
    """Every `StateStore` method, written once; subclasses connect and speak their driver."""

    url: str
    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url
        self._depth = 0  # how many transaction() blocks are open; writes commit when it returns to 0
        self._closed = False
        self._layouts_init()

    # -- what a backend provides ----------------------------------------------------------------------

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a statement written with `?` placeholders and return its rows."""

    @abstractmethod
    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement written with `?` placeholders and return how many rows it changed."""

    @abstractmethod
    def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement once per row (the driver batches the round trips); return the rows changed."""

    @abstractmethod
    def _begin_commit(self) -> AbstractContextManager[None]:
        """One database transaction: commit on normal exit, roll back on an exception."""

    @abstractmethod
    def _before_migrations(self) -> None:
        """Runs first inside the migration transaction (e.g. to serialise concurrent openers)."""

    @abstractmethod
    def _close_connection(self) -> None: ...

    @abstractmethod
    def _hold_lock(self, name: str, wait: float) -> AbstractContextManager[LockProbe]:
        """Hold the backend's lock `name` for the block, polling up to `wait` seconds while another owner
        has it (then LockHeldError, naming the owner); yield what tells whether it is still held."""

    # -- lifecycle ------------------------------------------------------------------------------------

    @staticmethod
    def _migrated(store: StoreT, migrations: Sequence[Migration]) -> StoreT:
        """The freshly connected store with its schema brought up to date; closed if that fails."""
        try:
            store.migrate(migrations)
        except BaseException:
            store.close()
            raise
        return store

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> int:
        """Bring the schema to the newest of `migrations`, in one transaction; return that version."""
        known = check_migrations(migrations)
        with self.transaction():
            self._before_migrations()
            self._write(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, "
                        "value TEXT NOT NULL)")
            current = self.schema_version()
            if current > known:
                raise newer_schema_error(current, known)
            for migration in migrations[current:]:
                for statement in migration.render(self.dialect):
                    self._write(statement)
            if known != current:
                self._write(upsert(META_TABLE, ("key", "value"), ("key",),
                                    "UPDATE SET value = excluded.value"),
                            (SCHEMA_VERSION_KEY, str(known)))
        return known

    # -- the run lock --------------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str, *, wait: float = 0.0) -> Iterator[RunLock]:
        """Hold the run lock `name` for the block, polling up to `wait` seconds while another run has it;
        the FencedLock yielded must be checked before every write."""
        # Inside a transaction the lock row (SQLite) would stay invisible to others until commit.
        if self._depth:
            raise StateError("take the run lock before opening a transaction, not inside one")
        with self._hold_lock(name, wait) as probe:
            yield FencedLock(self, name, self._bump_generation(name), probe)

    def _bump_generation(self, name: str) -> int:
        """Mark a new holder of lock `name`: whoever held it before sees the generation move."""
        with self.transaction():
            self._write(BUMP_FENCE, (name, 1))
            rows = self._query("SELECT generation FROM lock_fences WHERE name = ?", (name,))
        return int(rows[0][0])

    def schema_version(self) -> int:
        rows = self._query(f"SELECT value FROM {META_TABLE} WHERE key = ?", (SCHEMA_VERSION_KEY,))
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_connection()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit; a nested call joins the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._begin_commit():
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    # -- links ----------------------------------------------------------------------------------------

    def get_links(self, dataflow: str, *, source_ids: Iterable[str] = (),
                  target_ids: Iterable[str] = ()) -> list[Link]:
        """Links whose source id or target id is among those given (none given: no links), by source id."""
        found: dict[str, Link] = {}
        for column, ids in (("source_id", source_ids), ("target_id", target_ids)):
            for link in self._links_where_in(dataflow, column, ids):
                found[link.source_id] = link
        return [found[key] for key in sorted(found)]

    def target_markers(self, dataflow: str, target_ids: Iterable[str]) -> dict[str, str | None]:
        """The target change marker each linked target record had at its last sync, by target id: what a
        listing needs to pass over a record unchanged since (or mapsync's own write), without its values."""
        rows = self._rows_where_in(SELECT_TARGET_MARKERS, dataflow, "target_id", target_ids)
        return {target_id: marker_of(version) for target_id, version in rows}

    def _links_where_in(self, dataflow: str, column: str, ids: Iterable[str]) -> Iterator[Link]:
        return map(self._row_to_link, self._rows_where_in(SELECT_LINKS, dataflow, column, ids))

    def _rows_where_in(self, select: str, dataflow: str, column: str, ids: Iterable[str]) -> Iterator[Row]:
        """The rows of `select` whose `column` is among `ids`, a chunk of bound parameters per query."""
        unique_ids = list(dict.fromkeys(ids))
        for start in range(0, len(unique_ids), ID_CHUNK):
            marks, chunk = in_list(unique_ids[start:start + ID_CHUNK])
            yield from self._query(f"{select} WHERE dataflow = ? AND {column} IN ({marks})", (dataflow, *chunk))

    def link_by_source(self, dataflow: str, source_id: str) -> Link | None:
        rows = self._query(f"{SELECT_LINKS} WHERE dataflow = ? AND source_id = ?", (dataflow, source_id))
        return self._row_to_link(rows[0]) if rows else None

    def link_by_target(self, dataflow: str, target_id: str) -> Link | None:
        rows = self._query(f"{SELECT_LINKS} WHERE dataflow = ? AND target_id = ?", (dataflow, target_id))
        return self._row_to_link(rows[0]) if rows else None

    def iter_links(self, dataflow: str | None = None, state: str | None = None) -> Iterator[Link]:
        return keyset_pages(self._query, "links", LINK_COLUMNS, LINK_KEY,
                            filters={"dataflow": dataflow, "state": state}, convert=self._row_to_link)

    def iter_linked_source_ids(self, dataflow: str) -> Iterator[str]:
        """The source id of every link of `dataflow`, without its values: what a full scan compares with the
        records it listed."""
        return keyset_pages(self._query, "links", LINK_KEY, LINK_KEY, filters={"dataflow": dataflow},
                            convert=lambda row: str(row[1]))

    def count_links(self, dataflow: str) -> int:
        rows = self._query("SELECT COUNT(*) FROM links WHERE dataflow = ?", (dataflow,))
        return int(rows[0][0])

    def put_link(self, link: Link) -> None:
        """Insert or replace the link of (dataflow, source_id); `updated_at` is stamped by the store."""
        try:
            with self.transaction():
                self._write(PUT_LINK, self._link_rows([link], now_iso())[0])
        except UniqueViolation as exc:
            raise StateError(f"{link.dataflow}: target {link.target_id!r} is already linked to another "
                             f"source record than {link.source_id!r}") from exc

    def put_links(self, links: Sequence[Link]) -> None:
        """put_link for many links in one batch: what a sync records after each group of writes."""
        if not links:
            return
        stamp = now_iso()
        try:
            with self.transaction():
                self._write_many(PUT_LINK, self._link_rows(links, stamp))
        except UniqueViolation as exc:
            raise StateError(f"{links[0].dataflow}: one of {len(links)} links names a target that is already "
                             f"linked to another source record") from exc

    def delete_link(self, dataflow: str, source_id: str) -> None:
        with self.transaction():
            self._write("DELETE FROM links WHERE dataflow = ? AND source_id = ?", (dataflow, source_id))

    # -- cursors --------------------------------------------------------------------------------------

    def get_cursor(self, dataflow: str, side: str) -> str | None:
        rows = self._query("SELECT value FROM cursors WHERE dataflow = ? AND side = ?", (dataflow, side))
        return str(rows[0][0]) if rows else None

    def set_cursor(self, dataflow: str, side: str, value: str | None) -> None:
        """Remember where reading `side` got to; None forgets it (the next read starts from scratch)."""
        with self.transaction():
            if value is None:
                self._write("DELETE FROM cursors WHERE dataflow = ? AND side = ?", (dataflow, side))
            else:
                self._write(SET_CURSOR, (dataflow, side, value))

    # -- pending creates ------------------------------------------------------------------------------

    def add_pending(self, pending: PendingCreate) -> None:
        """Record a create before its request. Recording the same one again is a no-op, but never with
        another idempotency key: that would let a retried create make a duplicate."""
        with self.transaction():
            if self._write(ADD_PENDING, pending_to_row(pending, pending.created_at or now_iso())):
                return
            earlier = self.get_pending(pending.dataflow, pending.side, pending.record_id)
        if earlier is not None and earlier.idempotency_key != pending.idempotency_key:
            raise StateError(f"{pending.dataflow}: a create of {pending.side} for {pending.record_id!r} is "
                             f"already pending with another idempotency key")

    def add_pendings(self, pendings: Sequence[PendingCreate]) -> None:
        """add_pending for many creates in one batch, with the same no-duplicate-key rule."""
        if not pendings:
            return
        stamp = now_iso()
        with self.transaction():
            added = self._write_many(ADD_PENDING, [pending_to_row(p, p.created_at or stamp) for p in pendings])
            if added == len(pendings):
                return
            for pending in pendings:  # some were there already: each must carry the same key
                earlier = self.get_pending(pending.dataflow, pending.side, pending.record_id)
                if earlier is not None and earlier.idempotency_key != pending.idempotency_key:
                    raise StateError(f"{pending.dataflow}: a create of {pending.side} for {pending.record_id!r} "
                                     f"is already pending with another idempotency key")

    def get_pending(self, dataflow: str, side: str, record_id: str) -> PendingCreate | None:
        rows = self._query(f"SELECT {column_list(PENDING_COLUMNS)} FROM pending_creates "
                           "WHERE dataflow = ? AND side = ? AND record_id = ?", (dataflow, side, record_id))
        return row_to_pending(rows[0]) if rows else None

    def remove_pending(self, dataflow: str, side: str, record_id: str) -> None:
        with self.transaction():
            self._write("DELETE FROM pending_creates WHERE dataflow = ? AND side = ? AND record_id = ?",
                        (dataflow, side, record_id))

    def remove_pendings(self, dataflow: str, side: str, record_ids: Sequence[str]) -> None:
        with self.transaction():
            for start in range(0, len(record_ids), ID_CHUNK):
                marks, chunk = in_list(record_ids[start:start + ID_CHUNK])
                self._write(f"DELETE FROM pending_creates WHERE dataflow = ? AND side = ? AND record_id IN "
                            f"({marks})", (dataflow, side, *chunk))

    def iter_pending(self, dataflow: str | None = None) -> Iterator[PendingCreate]:
        return keyset_pages(self._query, "pending_creates", PENDING_COLUMNS, PENDING_KEY,
                            filters={"dataflow": dataflow}, convert=row_to_pending)

    # -- create_id counters ---------------------------------------------------------------------------

    def take_counter(self, dataflow: str, side: str) -> int:
        """The next {counter} of a dataflow's creates on `side` (1 first): never given twice, since it is
        taken in the caller's transaction, the one that records the pending create using it."""
        with self.transaction():
            self._write("INSERT INTO id_counters (dataflow, side, value) VALUES (?, ?, 1) ON CONFLICT "
                        "(dataflow, side) DO UPDATE SET value = id_counters.value + 1", (dataflow, side))
            rows = self._query("SELECT value FROM id_counters WHERE dataflow = ? AND side = ?", (dataflow, side))
        return int(rows[0][0])

    # -- dead letters ---------------------------------------------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Record a failure; a repeated one counts an attempt and keeps when it first failed."""
        with self.transaction():
            self._write(ADD_DEAD_LETTER, dead_letter_to_row(letter, now_iso()))

    def remove_dead_letter(self, dataflow: str, side: str, record_id: str) -> None:
        with self.transaction():
            self._write("DELETE FROM dead_letters WHERE dataflow = ? AND side = ? AND record_id = ?",
                        (dataflow, side, record_id))

    def iter_dead_letters(self, dataflow: str | None = None) -> Iterator[DeadLetter]:
        return keyset_pages(self._query, "dead_letters", DEAD_LETTER_COLUMNS, DEAD_LETTER_KEY,
                            filters={"dataflow": dataflow}, convert=row_to_dead_letter)

    # -- conflicts ------------------------------------------------------------------------------------

    def add_conflict(self, conflict: Conflict) -> None:
        """Record a manual conflict; the same property of the same link again replaces it."""
        with self.transaction():
            self._write(ADD_CONFLICT, conflict_to_row(conflict, conflict.detected_at or now_iso()))

    def iter_conflicts(self, dataflow: str | None = None) -> Iterator[Conflict]:
        return keyset_pages(self._query, "conflicts", CONFLICT_COLUMNS, CONFLICT_KEY,
                            filters={"dataflow": dataflow}, convert=row_to_conflict)

    def remove_conflicts(self, dataflow: str, source_id: str) -> None:
        with self.transaction():
            self._write("DELETE FROM conflicts WHERE dataflow = ? AND source_id = ?", (dataflow, source_id))

    # -- retired links and the delete guard's baseline ------------------------------------------------

    def retire_link(self, retired: RetiredLink) -> None:
        """Keep what a removed link knew. One entry per source record and per target record: an older
        entry naming the same target is replaced (only the newest pair can come back)."""
        with self.transaction():
            self._write("DELETE FROM retired_links WHERE dataflow = ? AND target_id = ? AND source_id <> ?",
                        (retired.dataflow, retired.target_id, retired.source_id))
            self._write(PUT_RETIRED, self._retired_row(retired, retired.retired_at or now_iso()))

    def retired_by_source(self, dataflow: str, source_ids: Iterable[str]) -> list[RetiredLink]:
        return list(self._retired_where_in(dataflow, "source_id", source_ids))

    def retired_by_target(self, dataflow: str, target_ids: Iterable[str]) -> list[RetiredLink]:
        return list(self._retired_where_in(dataflow, "target_id", target_ids))

    def _retired_where_in(self, dataflow: str, column: str, ids: Iterable[str]) -> Iterator[RetiredLink]:
        return map(self._row_to_retired, self._rows_where_in(SELECT_RETIRED, dataflow, column, ids))

    def iter_retired(self, dataflow: str | None = None) -> Iterator[RetiredLink]:
        return keyset_pages(self._query, "retired_links", RETIRED_COLUMNS, LINK_KEY,
                            filters={"dataflow": dataflow}, convert=self._row_to_retired)

    def count_retired(self, dataflow: str, *, since: str = "") -> int:
        """How many entries the dataflow has, retired at or after `since` (empty: all)."""
        rows = self._query("SELECT COUNT(*) FROM retired_links WHERE dataflow = ? AND retired_at >= ?",
                           (dataflow, since))
        return int(rows[0][0])

    def drop_retired(self, dataflow: str, *, source_ids: Iterable[str] = (),
                     target_ids: Iterable[str] = ()) -> None:
        """Forget the entries naming any of these source ids or target ids."""
        with self.transaction():
            for column, ids in (("source_id", source_ids), ("target_id", target_ids)):
                unique_ids = list(dict.fromkeys(ids))
                for start in range(0, len(unique_ids), ID_CHUNK):
                    marks, chunk = in_list(unique_ids[start:start + ID_CHUNK])
                    self._write(f"DELETE FROM retired_links WHERE dataflow = ? AND {column} IN ({marks})",
                                (dataflow, *chunk))

    def drop_retired_before(self, dataflow: str, stamp: str) -> int:
        """Forget the entries retired before `stamp`; return how many."""
        with self.transaction():
            return self._write("DELETE FROM retired_links WHERE dataflow = ? AND retired_at < ?",
                               (dataflow, stamp))

    def get_guard_baseline(self, dataflow: str) -> GuardBaseline | None:
        rows = self._query("SELECT dataflow, links, confirmed_at FROM guard_baselines WHERE dataflow = ?",
                           (dataflow,))
        return GuardBaseline(str(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def set_guard_baseline(self, baseline: GuardBaseline) -> None:
        with self.transaction():
            self._write(SET_BASELINE, (baseline.dataflow, baseline.links, baseline.confirmed_at or now_iso()))

    def conflicts_of(self, dataflow: str, source_id: str) -> list[Conflict]:
        rows = self._query(f"SELECT {column_list(CONFLICT_COLUMNS)} FROM conflicts WHERE dataflow = ? AND source_id = ?"
                           " ORDER BY prop", (dataflow, source_id))
        return [row_to_conflict(row) for row in rows]
