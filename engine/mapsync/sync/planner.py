"""The planner: reads both sides of one dataflow and decides, record by record, what to do.

It streams: changes are read page by page and turned into actions as they come, holding in memory only
what a decision needs (target records changed since the last run, unlinked target records when matching
or creating back, the ids seen on a full scan).

`DataflowPlanner` is the entry point; it is made of one part per concept, each a mixin over the shared
state of `_plan_base.PlannerBase`:

- `_plan_sides`: the scan of each side, retries of queued records, target-only changes
- `_plan_record`: one source record projected, merged three ways, checked against what would be refused
- `_plan_matching`: records with no partner, matched, created, or created back
- `_plan_relink`: records that come back to their retired link
- `_plan_deletes`: the delete policy, the guard, and what a complete apply settles
- `_plan_by_id`: just the records named (--id, a saved plan)
- `_plan_filters`: `where` and `target_where`, which records are in scope
- `_plan_tail`: records listed again unchanged, passed over (the cursor's tail) or counted at once
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from itertools import chain

from mapsync.sync._plan_by_id import ByIdMixin
from mapsync.sync._plan_deletes import DeletesMixin
from mapsync.sync._plan_filters import FiltersMixin
from mapsync.sync._plan_matching import MatchingMixin
from mapsync.sync._plan_record import RecordMixin
from mapsync.sync._plan_relink import RelinkMixin
from mapsync.sync._plan_sides import SidesMixin
from mapsync.sync._plan_tail import TailMixin
from mapsync.sync.actions import Action, ActionKind

__all__ = ["DataflowPlanner"]


class DataflowPlanner(SidesMixin, RecordMixin, MatchingMixin, RelinkMixin, DeletesMixin, ByIdMixin, FiltersMixin,
                      TailMixin):
    """Plans one dataflow: `actions()` streams its actions, `settle()` follows a complete apply."""

    def actions(self) -> Generator[Action, None, None]:
        # Records queued last time (failed, waiting, relinked or resolved by hand, cut short by a crash):
        # read again by id, and never judged unchanged on the link's word alone.
        self._pending = {(p.side, p.record_id): p.idempotency_key for p in self.store.iter_pending(self.name)}
        letters = list(self.store.iter_dead_letters(self.name))
        self._queued = {d.record_id for d in letters if d.side == "target"}
        self._ledger = {d.record_id: d.reason for d in letters if d.side == "target"}
        self._queued |= {record_id for side, record_id in self._pending if side == "target"}
        # Target records whose create in the source failed or was cut short: read again by id.
        self._queued_targets = {d.record_id for d in letters if d.side == "source"}
        self._queued_targets |= {record_id for side, record_id in self._pending if side == "source"}
        self._guard = self._read_guard()  # before any write of this run: plan and apply measure alike
        self._has_retired = self.store.count_retired(self.name) > 0
        if self.only_ids is not None:
            yield from map(self._stamped, self._planned_by_id())
            return  # not a complete scan: the scan stays incomplete, so no cursor moves and nothing is settled
        self._open_listings()
        try:
            self._scan_target()
            handled: set[str] = set()
            for action in chain(self._filter_failures(), self._scan_source(handled), self._retries(handled),
                                self._target_only_changes(), self._targets_back_in_scope(), self._creates_back(),
                                self._guarded_deletes()):
                yield self._stamped(action)
        finally:
            self._close_listings()
        if self.scan.full_source and not self.scan.deletes and not self.plan_only:
            self._find_retired_with_partner_gone()
        self.scan.complete = True

    def _stamped(self, action: Action) -> Action:
        if action.kind == ActionKind.UNCHANGED and action.source_id not in self._queued:
            return action  # nothing to refuse, link or key: most actions of a run listing records again
        action = self._refused(action) or action
        self._note_planned(action)
        # The executor clears a dead letter only where there is one, and reuses a create's earlier
        # idempotency key without asking the store again: statements saved per record.
        queued = action.source_id in self._queued or (
            action.kind == ActionKind.CREATE and action.side == "source" and action.target_id in self._queued_targets)
        key = None
        if action.kind == ActionKind.CREATE:
            other_id = action.source_id if action.side == "target" else action.target_id
            key = self._pending.get((action.side, other_id or ""))
        if queued == action.queued and key == action.idempotency_key:
            return action  # as planned (the initial sync's creates): no copy of the action
        return replace(action, queued=queued, idempotency_key=key)
