"""The history of every write: its table, and the store methods that record, read and prune it.

One row per record written (a side of a pair), with the changed properties as one JSON value: a sync of
30,000 records adds 30,000 rows in a few batched statements, and reading one record's history is an index
lookup. Rows are stamped by the store when the batch is recorded; `id` orders rows stamped alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from mapsync.errors import StateError
from mapsync.state._rows import Row, SqlAccess, column_list, decode_json, encode_json, now_iso, placeholders
from mapsync.state.base import HistoryEntry

HISTORY_COLUMNS = ("run_id", "at", "dataflow", "side", "source_id", "target_id", "kind", "why", "changes")
ADD_HISTORY = f"INSERT INTO history ({column_list(HISTORY_COLUMNS)}) VALUES ({placeholders(len(HISTORY_COLUMNS))})"
SELECT_HISTORY = f"SELECT id, {column_list(HISTORY_COLUMNS)} FROM history"
# At most this many rows go per prune: an apply after a long pause never holds the store for long.
PRUNE_BATCH = 10_000
SIDES = {"source": "source_id", "target": "target_id"}


def history_statements(id_column: str) -> tuple[str, ...]:
    """The table and its indexes; `id_column` is the dialect's auto-numbered key (see _migrations)."""
    return (
        f"""CREATE TABLE history (
            id {id_column},
            run_id TEXT NOT NULL,
            at TEXT NOT NULL,
            dataflow TEXT NOT NULL,
            side TEXT NOT NULL,
            source_id TEXT NOT NULL,
            target_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            why TEXT NOT NULL,
            changes {{json}} NOT NULL
        )""",
        "CREATE INDEX history_by_source ON history (dataflow, source_id)",
        "CREATE INDEX history_by_target ON history (dataflow, target_id)",
        "CREATE INDEX history_by_time ON history (dataflow, at)",
    )


def history_to_row(entry: HistoryEntry, at: str) -> Row:
    return (entry.run_id, at, entry.dataflow, entry.side, entry.source_id, entry.target_id, entry.kind,
            entry.why, encode_json(entry.changes))


def row_to_history(row: Row) -> HistoryEntry:
    entry_id, run_id, at, dataflow, side, source_id, target_id, kind, why, changes = row
    found = decode_json(changes)
    return HistoryEntry(dataflow, source_id, target_id, side, kind, why,
                        found if isinstance(found, dict) else {}, run_id, at, int(entry_id))


class HistoryMixin(SqlAccess):
    """The history methods of `SqlStore` (which supplies the driver methods declared here)."""


    def add_history(self, entries: Sequence[HistoryEntry]) -> None:
        """Record entries in one batch (one statement, the driver batching the rows), stamped alike."""
        if not entries:
            return
        stamp = now_iso()
        with self.transaction():
            self._write_many(ADD_HISTORY, [history_to_row(entry, entry.at or stamp) for entry in entries])

    def history_of(self, dataflow: str, record_id: str, *, side: str = "source", limit: int | None = None
                   ) -> list[HistoryEntry]:
        """Every entry naming `record_id` as its `side`'s id, newest first; at most `limit` (None: all)."""
        column = SIDES.get(side)
        if column is None:
            raise StateError(f"history: side must be source or target, not {side!r}")
        return list(self._history_pages(dataflow, column, record_id, limit))

    def _history_pages(self, dataflow: str, column: str, record_id: str, limit: int | None) -> Iterator[HistoryEntry]:
        sql = f"{SELECT_HISTORY} WHERE dataflow = ? AND {column} = ? ORDER BY at DESC, id DESC"
        params: tuple[Any, ...] = (dataflow, record_id)
        if limit is not None:
            sql += " LIMIT ?"
            params = (*params, max(0, limit))
        return map(row_to_history, self._query(sql, params))

    def prune_history(self, dataflow: str, before: str, *, limit: int = PRUNE_BATCH) -> int:
        """Forget at most `limit` of the dataflow's entries stamped before `before`, oldest first; return
        how many went (a later call takes the rest)."""
        with self.transaction():
            return self._write("DELETE FROM history WHERE id IN (SELECT id FROM history WHERE dataflow = ? "
                               "AND at < ? ORDER BY at LIMIT ?)", (dataflow, before, max(0, limit)))
