"""Rows <-> the state's dataclasses: JSON values as text, timestamps, the shared statements, keyset paging."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from mapsync.errors import StateError
from mapsync.state.base import Conflict, DeadLetter, PendingCreate

Row = tuple[Any, ...]
T = TypeVar("T")
# How a store runs a statement written with `?` placeholders and returns its rows.
Query = Callable[[str, Sequence[Any]], list[Row]]

# Rows fetched per keyset page by the iter_* methods: memory stays flat however large the table.
PAGE_SIZE = 1000


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


LINK_COLUMNS = ("dataflow", "source_id", "target_id", "source_values", "target_values",
                "source_version", "target_version", "state", "updated_at")
PENDING_COLUMNS = ("dataflow", "side", "record_id", "idempotency_key", "created_at")
DEAD_LETTER_COLUMNS = ("dataflow", "side", "record_id", "reason", "status", "attempts",
                       "first_failed_at", "last_failed_at")
CONFLICT_COLUMNS = ("dataflow", "source_id", "target_id", "prop", "base", "source_value",
                    "target_value", "detected_at")


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


def column_list(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def upsert(table: str, columns: Sequence[str], key: Sequence[str], update: str) -> str:
    return (f"INSERT INTO {table} ({column_list(columns)}) VALUES ({placeholders(len(columns))}) "
            f"ON CONFLICT ({column_list(key)}) DO {update}")


def set_excluded(columns: Sequence[str], key: Sequence[str]) -> str:
    return "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)


LINK_KEY = ("dataflow", "source_id")
PENDING_KEY = ("dataflow", "side", "record_id")
DEAD_LETTER_KEY = ("dataflow", "side", "record_id")
CONFLICT_KEY = ("dataflow", "source_id", "prop")

PUT_LINK = upsert("links", LINK_COLUMNS, LINK_KEY, set_excluded(LINK_COLUMNS, LINK_KEY))
SELECT_LINKS = f"SELECT {column_list(LINK_COLUMNS)} FROM links"
SELECT_TARGET_MARKERS = "SELECT target_id, target_version FROM links"
ADD_PENDING = upsert("pending_creates", PENDING_COLUMNS, PENDING_KEY, "NOTHING")
# A repeated failure keeps when it first failed and counts the attempt.
ADD_DEAD_LETTER = upsert(
    "dead_letters", DEAD_LETTER_COLUMNS, DEAD_LETTER_KEY,
    "UPDATE SET reason = excluded.reason, status = excluded.status, "
    "attempts = dead_letters.attempts + 1, last_failed_at = excluded.last_failed_at",
)
ADD_CONFLICT = upsert("conflicts", CONFLICT_COLUMNS, CONFLICT_KEY,
                       set_excluded(CONFLICT_COLUMNS, CONFLICT_KEY))
SET_CURSOR = upsert("cursors", ("dataflow", "side", "value"), ("dataflow", "side"),
                     "UPDATE SET value = excluded.value")
BUMP_FENCE = upsert("lock_fences", ("name", "generation"), ("name",),
                     "UPDATE SET generation = lock_fences.generation + 1")


RETIRED_COLUMNS = ("dataflow", "source_id", "target_id", "source_values", "target_values", "source_version",
                   "target_version", "gone", "retired_at")
PUT_RETIRED = upsert("retired_links", RETIRED_COLUMNS, LINK_KEY, set_excluded(RETIRED_COLUMNS, LINK_KEY))
SELECT_RETIRED = f"SELECT {column_list(RETIRED_COLUMNS)} FROM retired_links"
SET_BASELINE = upsert("guard_baselines", ("dataflow", "links", "confirmed_at"), ("dataflow",),
                       "UPDATE SET links = excluded.links, confirmed_at = excluded.confirmed_at")


def keyset_pages(query: Query, table: str, columns: Sequence[str], key: Sequence[str], *,
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
        where = [*conditions, f"({column_list(key)}) > ({placeholders(len(key))})"] if after \
            else conditions
        sql = (f"SELECT {column_list(columns)} FROM {table}"
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + f" ORDER BY {column_list(key)} LIMIT {PAGE_SIZE}")
        rows = query(sql, (*params, *after))
        for row in rows:
            yield convert(row)
        if len(rows) < PAGE_SIZE:
            return
        after = [rows[-1][i] for i in key_at]


class SqlAccess(ABC):
    """What a table family's mixin (`_history`, `_tails`, `_schedule`) needs of `SqlStore`: its queries,
    writes and transactions, in either dialect."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def _write(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    @abstractmethod
    def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]: ...
