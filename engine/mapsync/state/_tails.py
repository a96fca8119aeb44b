"""The tails of the cursors: what the last complete scan of a side listed near its cursor (see ScanTail).

One row per dataflow and side, its records as one JSON object {change marker: [ids]}: read once when a
scan starts, replaced once when a complete run saves its cursors (in the same transaction).
"""

from __future__ import annotations

from mapsync.state._rows import SqlAccess, decode_json, encode_json, upsert
from mapsync.state.base import ScanTail

TAIL_COLUMNS = ("dataflow", "side", "fingerprint", "seen")
PUT_TAIL = upsert("scan_tails", TAIL_COLUMNS, ("dataflow", "side"),
                  "UPDATE SET fingerprint = excluded.fingerprint, seen = excluded.seen")


class TailsMixin(SqlAccess):
    """The scan-tail methods of `SqlStore`."""


    def get_scan_tail(self, dataflow: str, side: str) -> ScanTail | None:
        rows = self._query("SELECT fingerprint, seen FROM scan_tails WHERE dataflow = ? AND side = ?",
                           (dataflow, side))
        if not rows:
            return None
        seen = decode_json(rows[0][1])
        if not isinstance(seen, dict):
            return None  # unreadable: as if there were none (the records are then planned again)
        return ScanTail(dataflow, side, str(rows[0][0]), seen)

    def set_scan_tail(self, tail: ScanTail) -> None:
        with self.transaction():
            self._write(PUT_TAIL, (tail.dataflow, tail.side, tail.fingerprint, encode_json(tail.seen)))
