"""What a source record listed again costs: nothing when the last complete run saw it as it is, next to
nothing when its link already holds its change marker.

- **The cursor's tail.** A run lists from a little before its cursor (the overlap window), so it lists again
  what the last run listed there. The last complete run kept the ids and change markers it listed at the
  tail (`ScanTail`); a record listed again with the same marker is passed over before any lookup, as if the
  listing had not returned it (which is what happens to every unchanged record outside the window). A
  record with another marker, or not in the tail (committed late, with an earlier timestamp), is planned.
- **The settled link.** A linked record whose change marker is the one its link stored (read by mapsync, or
  the marker mapsync's own write produced: its echo) is unchanged, and counted so without projecting or
  merging it, unless its pair waits for something: a conflict, the ledger (failed, waiting, a note), a
  pending create, a target record changed or gone, a filter that failed on its partner, or a reference that
  now resolves to another record.

Both are trusted only under the mapping (and mapsync version) they were judged under: after an edit of the
mapping, records listed again are planned in full once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from mapsync import __version__
from mapsync.connectors.base import Change
from mapsync.mapping.paths import get_path, split
from mapsync.state.base import Link, ScanTail
from mapsync.sync._plan_base import PlannerBase

# How far before the cursor the tail reaches: at least the connectors' overlap window (Tidsbanken: 60 s by
# default; a connector exposing a longer `overlap` widens it). Records listed again from further back are
# still recognised by their settled link.
TAIL_WINDOW = timedelta(seconds=60)


def fingerprint(spec: Any) -> str:
    """What the records were judged under: the mapping's rows, filters and settings, and mapsync's version."""
    judged = (__version__, spec.source, spec.target, spec.rows, spec.constants, spec.where, spec.target_where,
              spec.lookups, spec.timezone, spec.conflicts, spec.delete_policy, spec.create, spec.match)
    return hashlib.sha256(repr(judged).encode("utf-8")).hexdigest()[:16]


def _moment(marker: str) -> datetime | None:
    try:
        return datetime.fromisoformat(marker.replace("Z", "+00:00"))
    except ValueError:
        return None


class TailMixin(PlannerBase):
    """Passes over source records listed again unchanged."""

    def _start_tail(self, since: str | None) -> None:
        """Before the source is listed: the last complete run's tail, if it may be trusted."""
        self._fingerprint = fingerprint(self.spec)
        kept = self.store.get_scan_tail(self.name, "source")
        self._trusted = kept is not None and kept.fingerprint == self._fingerprint
        self._previous_tail: dict[str, str] = {}  # id -> change marker
        self._conflicted: set[str] = set()
        if self._trusted and kept is not None and since is not None:
            self._previous_tail = {record_id: marker for marker, ids in kept.seen.items() for record_id in ids}
            # A pair waiting for a person is planned in full whenever its record is listed (one query a run).
            self._conflicted = {c.source_id for c in self.store.iter_conflicts(self.name)}
        self._tail: dict[str, list[str]] = {}
        self._references = self._reference_paths()

    def _note_listed(self, change: Change) -> None:
        self._tail.setdefault(change.modified, []).append(change.id)

    def _seen_unchanged(self, change: Change) -> bool:
        """Listed again as the last complete run saw it, and not waiting (queued for a retry, in a manual
        conflict): passed over."""
        return (self._previous_tail.get(change.id) == change.modified and not change.deleted
                and change.id not in self._queued and change.id not in self._conflicted)

    def _settled(self, change: Change, link: Link) -> bool:
        """A linked record unchanged since its link was stored, with nothing about its pair waiting."""
        return (self._trusted and link.source_version == change.modified and link.state == "ok"
                and change.id not in self._queued and change.id not in self._target_gone
                and change.id not in self._scope_held and link.target_id not in self.scan.target_changed
                and change.record is not None and self._references_unchanged(change.record, link))

    def _reference_paths(self) -> list[tuple[str, tuple[str, ...], str]] | None:
        """(dataflow, source path, target) of each reference row; None when one is an expression (a record
        with such a row is then never judged unchanged on its marker alone)."""
        paths = []
        for row in self.spec.rows:
            if row.dataflow:
                if row.source_path is None:
                    return None
                paths.append((row.dataflow, tuple(split(row.source_path)), row.target))
        return paths

    def _references_unchanged(self, record: dict[str, Any], link: Link) -> bool:
        """Each reference still names the record it named at the last sync (its dataflow may have relinked
        the record it points at since: the reference must then be written anew)."""
        if self._references is None:
            return False
        for dataflow, parts, target in self._references:
            value = get_path(record, parts)
            stored = link.source_values.get(target)
            if value is None or value == "":
                if stored is not None:
                    return False
            elif stored is None or self.links.to_target(dataflow, str(value)) != stored:
                return False
        return True

    def _prune_tail(self, cursor: str | None) -> None:
        """Forget what the next run will not list again: the listing comes in change order, so the oldest
        markers are first."""
        moment = _moment(cursor) if cursor else None
        if moment is None:
            return
        window = TAIL_WINDOW
        overlap = getattr(self.source, "overlap", None)
        if isinstance(overlap, timedelta):
            window = max(window, overlap)
        edge = moment - window
        for marker in list(self._tail):
            at = _moment(marker)
            if at is not None and at >= edge:
                break
            del self._tail[marker]

    def _tail_to_keep(self, cursor: str | None) -> ScanTail:
        """The records listed at or after `cursor` minus the window: what the next run lists again."""
        self._prune_tail(cursor)
        return ScanTail(self.name, "source", self._fingerprint, self._tail)
