"""The schedule the workers of `mapsync run` share: per dataflow, its last run (see ScheduleEntry).

One row per dataflow, written by the worker holding the dataflow's `schedule:` lock when a run begins and
again when it ends. Another worker that takes the lock reads it to learn whether the dataflow is due (see
worker/schedule.py `shared_due`), so N workers make one run per interval, not N.
"""

from __future__ import annotations

from mapsync.state._rows import Row, SqlAccess, column_list, now_iso, upsert
from mapsync.state.base import ScheduleEntry

SCHEDULE_COLUMNS = ("dataflow", "started_at", "finished_at", "status", "failures", "full_scan_at", "worker")
PUT_SCHEDULE = upsert("run_schedule", SCHEDULE_COLUMNS, ("dataflow",),
                      "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in SCHEDULE_COLUMNS[1:]))
SELECT_SCHEDULE = f"SELECT {column_list(SCHEDULE_COLUMNS)} FROM run_schedule"

SCHEDULE_STATEMENTS = (
    """CREATE TABLE run_schedule (
        dataflow TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        full_scan_at TEXT NOT NULL DEFAULT '',
        worker TEXT NOT NULL DEFAULT ''
    )""",
)


def schedule_to_row(entry: ScheduleEntry) -> Row:
    return (entry.dataflow, entry.started_at or now_iso(), entry.finished_at, entry.status, entry.failures,
            entry.full_scan_at, entry.worker)


def row_to_schedule(row: Row) -> ScheduleEntry:
    dataflow, started_at, finished_at, status, failures, full_scan_at, worker = row
    return ScheduleEntry(str(dataflow), str(started_at), str(status), str(finished_at), int(failures),
                         str(full_scan_at), str(worker))


class ScheduleMixin(SqlAccess):
    """The shared-schedule methods of `SqlStore`."""


    def get_schedule(self, dataflow: str) -> ScheduleEntry | None:
        rows = self._query(f"{SELECT_SCHEDULE} WHERE dataflow = ?", (dataflow,))
        return row_to_schedule(rows[0]) if rows else None

    def put_schedule(self, entry: ScheduleEntry) -> None:
        """Replace the dataflow's row; an empty `started_at` is stamped by the store."""
        with self.transaction():
            self._write(PUT_SCHEDULE, schedule_to_row(entry))

    def iter_schedule(self) -> list[ScheduleEntry]:
        """Every dataflow's row, by name (a handful: one per dataflow)."""
        return [row_to_schedule(row) for row in self._query(f"{SELECT_SCHEDULE} ORDER BY dataflow")]
