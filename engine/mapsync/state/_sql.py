"""What the SQLite and PostgreSQL stores share: schema, migrations, row conversion, and the store itself.

`SqlStore` implements every `StateStore` method once, in SQL that both databases accept (upserts with
`ON CONFLICT`, row-value comparisons for keyset paging). A backend subclass supplies only what differs
between dialects and drivers: how a statement is executed (and its placeholder style), how a transaction
begins and ends, what runs before a migration, and how the run lock is held.

The run lock is fenced here, once for both backends: taking a lock bumps its generation in
`lock_fences`, and the `FencedLock` a run holds checks, before each write, that the backend still holds
the lock for it and that the generation is still the one it took.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

from mapsync.errors import LockLostError, StateError
from mapsync.state.base import (
    Conflict,
    DeadLetter,
    GuardBaseline,
    Link,
    PendingCreate,
    RetiredLink,
    RunLock,
    Values,
)

Row = tuple[Any, ...]
T = TypeVar("T")
StoreT = TypeVar("StoreT", bound="SqlStore")

# SQLite and PostgreSQL both accept far more bound parameters than this; 500 keeps each statement small
# enough to plan quickly and still turns 30,000 lookups into 60 round trips.
ID_CHUNK = 500
# Rows fetched per keyset page by the iter_* methods: memory stays flat however large the table.
PAGE_SIZE = 1000

META_TABLE = "mapsync_meta"
SCHEMA_VERSION_KEY = "schema_version"


# --- schema and migrations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """The few words of SQL that differ between databases."""

    name: str
    json_type: str  # JSONB on PostgreSQL (indexable, validated); plain TEXT holding JSON on SQLite
    # What keeps a row read in a transaction from changing until it commits: FOR SHARE on PostgreSQL;
    # nothing on SQLite, where BEGIN IMMEDIATE already keeps every other writer out.
    share_row: str


SQLITE = Dialect(name="sqlite", json_type="TEXT", share_row="")
POSTGRESQL = Dialect(name="postgresql", json_type="JSONB", share_row=" FOR SHARE")


@dataclass(frozen=True)
class Migration:
    """One step of the schema: `version` N turns a database at N-1 into one at N.

    Statements are templates: `{json}` becomes the dialect's JSON column type. `only` adds statements
    for one dialect (keyed by `Dialect.name`), for what exists on one backend alone.
    """

    version: int
    description: str
    statements: tuple[str, ...]
    only: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def render(self, dialect: Dialect) -> list[str]:
        templates = (*self.statements, *self.only.get(dialect.name, ()))
        return [t.format(json=dialect.json_type) for t in templates]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="links, cursors, pending creates, dead letters, conflicts (and SQLite's run locks)",
        statements=(
            """CREATE TABLE links (
                dataflow TEXT NOT NULL,
                source_id TEXT NOT NULL,
                target_id TEXT NOT NULL,
                source_values {json} NOT NULL,
                target_values {json} NOT NULL,
                source_version TEXT,
                target_version TEXT,
                state TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, source_id),
                UNIQUE (dataflow, target_id)
            )""",
            """CREATE TABLE cursors (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (dataflow, side)
            )""",
            """CREATE TABLE pending_creates (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                record_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, side, record_id)
            )""",
            """CREATE TABLE dead_letters (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                record_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                status INTEGER,
                attempts INTEGER NOT NULL,
                first_failed_at TEXT NOT NULL,
                last_failed_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, side, record_id)
            )""",
            """CREATE TABLE conflicts (
                dataflow TEXT NOT NULL,
                source_id TEXT NOT NULL,
                target_id TEXT NOT NULL,
                prop TEXT NOT NULL,
                base {json} NOT NULL,
                source_value {json} NOT NULL,
                target_value {json} NOT NULL,
                detected_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, source_id, prop)
            )""",
        ),
        # PostgreSQL locks with advisory locks that die with the connection; SQLite needs a table.
        only={
            "sqlite": (
                """CREATE TABLE run_locks (
                    name TEXT PRIMARY KEY,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    token TEXT NOT NULL,
                    acquired_at TEXT NOT NULL,
                    heartbeat_at TEXT NOT NULL
                )""",
            )
        },
    ),
    Migration(
        version=2,
        description="run lock fencing: a generation per lock name, and who holds a SQLite lock (boot, start)",
        statements=(
            # Taking a lock bumps its generation; a run that sees another generation than the one it
            # took has lost its lock and must write nothing more.
            """CREATE TABLE lock_fences (
                name TEXT PRIMARY KEY,
                generation BIGINT NOT NULL
            )""",
        ),
        only={
            "sqlite": (
                "ALTER TABLE run_locks ADD COLUMN boot_id TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE run_locks ADD COLUMN process_start TEXT NOT NULL DEFAULT ''",
            )
        },
    ),
    Migration(
        version=3,
        description="retired links (what an unlink knew, to relink a record that comes back) and the "
                    "delete guard's baseline",
        statements=(
            """CREATE TABLE retired_links (
                dataflow TEXT NOT NULL,
                source_id TEXT NOT NULL,
                target_id TEXT NOT NULL,
                source_values {json} NOT NULL,
                target_values {json} NOT NULL,
                source_version TEXT,
                target_version TEXT,
                gone TEXT NOT NULL,
                retired_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, source_id)
            )""",
            "CREATE INDEX retired_links_by_target ON retired_links (dataflow, target_id)",
            """CREATE TABLE guard_baselines (
                dataflow TEXT PRIMARY KEY,
                links INTEGER NOT NULL,
                confirmed_at TEXT NOT NULL
            )""",
        ),
    ),
)


def check_migrations(migrations: Sequence[Migration]) -> int:
    """Return the newest version, after making sure the steps are numbered 1, 2, ... without gaps."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise StateError(f"migration {migration.description!r} has version {migration.version}, "
                             f"expected {expected}")
    return len(migrations)


def newer_schema_error(found: int, known: int) -> StateError:
    return StateError(f"state store schema version {found} is newer than this mapsync (knows {known}); "
                      "upgrade mapsync")


# --- values ------------------------------------------------------------------------------------------


def now_iso() -> str:
    """The store's timestamps: UTC, ISO 8601, so they sort as text on both backends."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def encode_json(value: Any) -> str:
    # Sorted keys and no spaces: equal values make equal text, which keeps SQLite's TEXT comparable.
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateError(f"value is not JSON-serialisable: {exc}") from exc


def decode_json(text: str) -> Any:
    return json.loads(text)


def decode_values(text: str) -> Values:
    values = decode_json(text)
    if not isinstance(values, dict):
        raise StateError(f"stored values are not a JSON object: {text[:80]!r}")
    return values


# --- rows <-> dataclasses ----------------------------------------------------------------------------

LINK_COLUMNS = ("dataflow", "source_id", "target_id", "source_values", "target_values",
                "source_version", "target_version", "state", "updated_at")
PENDING_COLUMNS = ("dataflow", "side", "record_id", "idempotency_key", "created_at")
DEAD_LETTER_COLUMNS = ("dataflow", "side", "record_id", "reason", "status", "attempts",
                       "first_failed_at", "last_failed_at")
CONFLICT_COLUMNS = ("dataflow", "source_id", "target_id", "prop", "base", "source_value",
                    "target_value", "detected_at")


def link_to_row(link: Link, updated_at: str) -> Row:
    return (link.dataflow, link.source_id, link.target_id, encode_json(link.source_values),
            encode_json(link.target_values), link.source_version, link.target_version, link.state,
            updated_at)


def row_to_link(row: Row) -> Link:
    dataflow, source_id, target_id, source_values, target_values, sv, tv, state, updated_at = row
    return Link(dataflow, source_id, target_id, decode_values(source_values),
                decode_values(target_values), sv, tv, state, updated_at)


def pending_to_row(pending: PendingCreate, created_at: str) -> Row:
    return (pending.dataflow, pending.side, pending.record_id, pending.idempotency_key, created_at)


def row_to_pending(row: Row) -> PendingCreate:
    return PendingCreate(*row)


def dead_letter_to_row(letter: DeadLetter, now: str) -> Row:
    return (letter.dataflow, letter.side, letter.record_id, letter.reason, letter.status, letter.attempts,
            letter.first_failed_at or now, letter.last_failed_at or now)


def row_to_dead_letter(row: Row) -> DeadLetter:
    return DeadLetter(*row)


def conflict_to_row(conflict: Conflict, detected_at: str) -> Row:
    return (conflict.dataflow, conflict.source_id, conflict.target_id, conflict.prop,
            encode_json(conflict.base), encode_json(conflict.source_value),
            encode_json(conflict.target_value), detected_at)


def row_to_conflict(row: Row) -> Conflict:
    dataflow, source_id, target_id, prop, base, source_value, target_value, detected_at = row
    return Conflict(dataflow, source_id, target_id, prop, decode_json(base), decode_json(source_value),
                    decode_json(target_value), detected_at)


# --- SQL text (placeholders are `?`; the PostgreSQL backend rewrites them) ---------------------------


def _columns(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _upsert(table: str, columns: Sequence[str], key: Sequence[str], update: str) -> str:
    return (f"INSERT INTO {table} ({_columns(columns)}) VALUES ({_placeholders(len(columns))}) "
            f"ON CONFLICT ({_columns(key)}) DO {update}")


def _set_excluded(columns: Sequence[str], key: Sequence[str]) -> str:
    return "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)


LINK_KEY = ("dataflow", "source_id")
PENDING_KEY = ("dataflow", "side", "record_id")
DEAD_LETTER_KEY = ("dataflow", "side", "record_id")
CONFLICT_KEY = ("dataflow", "source_id", "prop")

PUT_LINK = _upsert("links", LINK_COLUMNS, LINK_KEY, _set_excluded(LINK_COLUMNS, LINK_KEY))
SELECT_LINKS = f"SELECT {_columns(LINK_COLUMNS)} FROM links"
ADD_PENDING = _upsert("pending_creates", PENDING_COLUMNS, PENDING_KEY, "NOTHING")
# A repeated failure keeps when it first failed and counts the attempt.
ADD_DEAD_LETTER = _upsert(
    "dead_letters", DEAD_LETTER_COLUMNS, DEAD_LETTER_KEY,
    "UPDATE SET reason = excluded.reason, status = excluded.status, "
    "attempts = dead_letters.attempts + 1, last_failed_at = excluded.last_failed_at",
)
ADD_CONFLICT = _upsert("conflicts", CONFLICT_COLUMNS, CONFLICT_KEY,
                       _set_excluded(CONFLICT_COLUMNS, CONFLICT_KEY))
SET_CURSOR = _upsert("cursors", ("dataflow", "side", "value"), ("dataflow", "side"),
                     "UPDATE SET value = excluded.value")
BUMP_FENCE = _upsert("lock_fences", ("name", "generation"), ("name",),
                     "UPDATE SET generation = lock_fences.generation + 1")


class UniqueViolation(StateError):
    """Raised by a backend when a statement breaks a uniqueness constraint (the store rewords it)."""


# Why a held lock is no longer held, asked of the backend: a sentence, or None while it still holds.
LockProbe = Callable[[], str | None]


class FencedLock:
    """The run lock as a run holds it: `check()` before every write.

    The lock is lost when the backend no longer holds it for this run (`probe`), or when its generation
    in `lock_fences` is no longer the one this run took (another run took the lock since). Inside a
    transaction, the generation is read with the row share lock of the dialect, so a run taking the lock
    over waits for that transaction to commit: the writes either land before the new run starts, or the
    check sees the new generation and nothing is written. Once lost, always lost.
    """

    def __init__(self, store: SqlStore, name: str, generation: int, probe: LockProbe) -> None:
        self.name = name
        self.generation = generation
        self._store = store
        self._probe = probe
        self._lost: str | None = None

    def check(self) -> None:
        if self._lost is None:
            self._lost = self._probe() or self._generation_moved()
        if self._lost is not None:
            raise LockLostError(f"lost the run lock {self.name!r} on {self._store.url}: {self._lost}: "
                                "stopped before writing more")

    def _generation_moved(self) -> str | None:
        rows = self._store._query(f"SELECT generation FROM lock_fences WHERE name = ?"
                                  f"{self._store.dialect.share_row}", (self.name,))
        current = int(rows[0][0]) if rows else None
        if current == self.generation:
            return None
        return f"another run has taken it since (lock generation {current}, this run took {self.generation})"

    def __repr__(self) -> str:
        return f"<FencedLock {self.name!r} generation {self.generation}>"


# --- the store ---------------------------------------------------------------------------------------


class SqlStore(ABC):
    """Every `StateStore` method, written once; subclasses connect and speak their driver."""

    url: str
    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url
        self._depth = 0  # how many transaction() blocks are open; writes commit when it returns to 0
        self._closed = False

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
                self._write(_upsert(META_TABLE, ("key", "value"), ("key",),
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

    def _links_where_in(self, dataflow: str, column: str, ids: Iterable[str]) -> Iterator[Link]:
        unique_ids = list(dict.fromkeys(ids))
        for start in range(0, len(unique_ids), ID_CHUNK):
            chunk = unique_ids[start:start + ID_CHUNK]
            sql = f"{SELECT_LINKS} WHERE dataflow = ? AND {column} IN ({_placeholders(len(chunk))})"
            for row in self._query(sql, (dataflow, *chunk)):
                yield row_to_link(row)

    def link_by_source(self, dataflow: str, source_id: str) -> Link | None:
        rows = self._query(f"{SELECT_LINKS} WHERE dataflow = ? AND source_id = ?", (dataflow, source_id))
        return row_to_link(rows[0]) if rows else None

    def link_by_target(self, dataflow: str, target_id: str) -> Link | None:
        rows = self._query(f"{SELECT_LINKS} WHERE dataflow = ? AND target_id = ?", (dataflow, target_id))
        return row_to_link(rows[0]) if rows else None

    def iter_links(self, dataflow: str | None = None, state: str | None = None) -> Iterator[Link]:
        return self._iter_pages("links", LINK_COLUMNS, LINK_KEY, {"dataflow": dataflow, "state": state},
                                row_to_link)

    def count_links(self, dataflow: str) -> int:
        rows = self._query("SELECT COUNT(*) FROM links WHERE dataflow = ?", (dataflow,))
        return int(rows[0][0])

    def put_link(self, link: Link) -> None:
        """Insert or replace the link of (dataflow, source_id); `updated_at` is stamped by the store."""
        try:
            with self.transaction():
                self._write(PUT_LINK, link_to_row(link, now_iso()))
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
                self._write_many(PUT_LINK, [link_to_row(link, stamp) for link in links])
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
        rows = self._query(f"SELECT {_columns(PENDING_COLUMNS)} FROM pending_creates "
                           "WHERE dataflow = ? AND side = ? AND record_id = ?", (dataflow, side, record_id))
        return row_to_pending(rows[0]) if rows else None

    def remove_pending(self, dataflow: str, side: str, record_id: str) -> None:
        with self.transaction():
            self._write("DELETE FROM pending_creates WHERE dataflow = ? AND side = ? AND record_id = ?",
                        (dataflow, side, record_id))

    def remove_pendings(self, dataflow: str, side: str, record_ids: Sequence[str]) -> None:
        with self.transaction():
            for start in range(0, len(record_ids), ID_CHUNK):
                chunk = list(record_ids[start:start + ID_CHUNK])
                self._write(f"DELETE FROM pending_creates WHERE dataflow = ? AND side = ? AND record_id IN "
                            f"({_placeholders(len(chunk))})", (dataflow, side, *chunk))

    def iter_pending(self, dataflow: str | None = None) -> Iterator[PendingCreate]:
        return self._iter_pages("pending_creates", PENDING_COLUMNS, PENDING_KEY, {"dataflow": dataflow},
                                row_to_pending)

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
        return self._iter_pages("dead_letters", DEAD_LETTER_COLUMNS, DEAD_LETTER_KEY,
                                {"dataflow": dataflow}, row_to_dead_letter)

    # -- conflicts ------------------------------------------------------------------------------------

    def add_conflict(self, conflict: Conflict) -> None:
        """Record a manual conflict; the same property of the same link again replaces it."""
        with self.transaction():
            self._write(ADD_CONFLICT, conflict_to_row(conflict, conflict.detected_at or now_iso()))

    def iter_conflicts(self, dataflow: str | None = None) -> Iterator[Conflict]:
        return self._iter_pages("conflicts", CONFLICT_COLUMNS, CONFLICT_KEY, {"dataflow": dataflow},
                                row_to_conflict)

    def remove_conflicts(self, dataflow: str, source_id: str) -> None:
        with self.transaction():
            self._write("DELETE FROM conflicts WHERE dataflow = ? AND source_id = ?", (dataflow, source_id))

    # -- streaming ------------------------------------------------------------------------------------

    def _iter_pages(self, table: str, columns: Sequence[str], key: Sequence[str],
                    filters: dict[str, str | None], convert: Callable[[Row], T]) -> Iterator[T]:
        """Stream a table in key order, a page per query (keyset paging).

        Unlike an open server-side cursor, this survives commits made while the caller iterates (a
        PostgreSQL cursor dies at commit) and holds no read transaction open between pages.
        """
        conditions = [f"{name} = ?" for name, value in filters.items() if value is not None]
        params: list[Any] = [value for value in filters.values() if value is not None]
        key_at = [columns.index(k) for k in key]
        after: list[Any] = []
        while True:
            where = [*conditions, f"({_columns(key)}) > ({_placeholders(len(key))})"] if after \
                else conditions
            sql = (f"SELECT {_columns(columns)} FROM {table}"
                   + (f" WHERE {' AND '.join(where)}" if where else "")
                   + f" ORDER BY {_columns(key)} LIMIT {PAGE_SIZE}")
            rows = self._query(sql, (*params, *after))
            for row in rows:
                yield convert(row)
            if len(rows) < PAGE_SIZE:
                return
            after = [rows[-1][i] for i in key_at]

    # -- retired links and the delete guard's baseline ------------------------------------------------

    def retire_link(self, retired: RetiredLink) -> None:
        """Keep what a removed link knew. One entry per source record and per target record: an older
        entry naming the same target is replaced (only the newest pair can come back)."""
        with self.transaction():
            self._write("DELETE FROM retired_links WHERE dataflow = ? AND target_id = ? AND source_id <> ?",
                        (retired.dataflow, retired.target_id, retired.source_id))
            self._write(PUT_RETIRED, retired_to_row(retired, retired.retired_at or now_iso()))

    def retired_by_source(self, dataflow: str, source_ids: Iterable[str]) -> list[RetiredLink]:
        return list(self._retired_where_in(dataflow, "source_id", source_ids))

    def retired_by_target(self, dataflow: str, target_ids: Iterable[str]) -> list[RetiredLink]:
        return list(self._retired_where_in(dataflow, "target_id", target_ids))

    def _retired_where_in(self, dataflow: str, column: str, ids: Iterable[str]) -> Iterator[RetiredLink]:
        unique_ids = list(dict.fromkeys(ids))
        for start in range(0, len(unique_ids), ID_CHUNK):
            chunk = unique_ids[start:start + ID_CHUNK]
            sql = f"{SELECT_RETIRED} WHERE dataflow = ? AND {column} IN ({_placeholders(len(chunk))})"
            for row in self._query(sql, (dataflow, *chunk)):
                yield row_to_retired(row)

    def iter_retired(self, dataflow: str | None = None) -> Iterator[RetiredLink]:
        return self._iter_pages("retired_links", RETIRED_COLUMNS, LINK_KEY, {"dataflow": dataflow},
                                row_to_retired)

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
                    chunk = unique_ids[start:start + ID_CHUNK]
                    self._write(f"DELETE FROM retired_links WHERE dataflow = ? AND {column} IN "
                                f"({_placeholders(len(chunk))})", (dataflow, *chunk))

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
        rows = self._query(f"SELECT {_columns(CONFLICT_COLUMNS)} FROM conflicts WHERE dataflow = ? AND source_id = ?"
                           " ORDER BY prop", (dataflow, source_id))
        return [row_to_conflict(row) for row in rows]


RETIRED_COLUMNS = ("dataflow", "source_id", "target_id", "source_values", "target_values", "source_version",
                   "target_version", "gone", "retired_at")
PUT_RETIRED = _upsert("retired_links", RETIRED_COLUMNS, LINK_KEY, _set_excluded(RETIRED_COLUMNS, LINK_KEY))
SELECT_RETIRED = f"SELECT {_columns(RETIRED_COLUMNS)} FROM retired_links"
SET_BASELINE = _upsert("guard_baselines", ("dataflow", "links", "confirmed_at"), ("dataflow",),
                       "UPDATE SET links = excluded.links, confirmed_at = excluded.confirmed_at")


def retired_to_row(retired: RetiredLink, retired_at: str) -> Row:
    # The link's own columns but its state and stamp, then why and when it was retired.
    return (*link_to_row(retired, "")[:-2], retired.gone, retired_at)


def row_to_retired(row: Row) -> RetiredLink:
    retired = RetiredLink.of(row_to_link((*row[:-2], "ok", "")), gone=row[-2])
    retired.retired_at = row[-1]
    return retired
