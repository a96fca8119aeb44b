"""The history entries of what a run wrote (built from the executor's outcomes) and of an operator's changes.

Each entry says why: a change on the other side, a conflict settled by the mapping's policy (the losing
value kept, so a person can restore it), a create, a delete, a link made or removed, a resolve by hand.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mapsync.spec.model import DataflowSpec
from mapsync.state.base import Conflict, HistoryEntry, Link, RunLock, StateStore
from mapsync.sync.actions import Action, ActionKind, ConflictInfo

if TYPE_CHECKING:
    from mapsync.sync.executor import Outcome

# Manual conflicts are recorded when first detected; a pair with no write and no new conflict adds nothing.
PAIR_WHY = {
    ActionKind.UPDATE: "",
    ActionKind.LINK: "matched an existing record: linked",
    ActionKind.RELINK: "came back: linked to its earlier partner again",
}


def other(side: str) -> str:
    return "source" if side == "target" else "target"


def outcome_entries(outcome: Outcome, spec: DataflowSpec, run_id: str) -> list[HistoryEntry]:
    """What one successful outcome wrote, one entry per side written (none for a record left as it was)."""
    action = outcome.action
    if outcome.error is not None or outcome.settled_as is not None:
        return []
    if action.kind == ActionKind.CREATE and outcome.created is not None:
        return [_create_entry(action, outcome.created, run_id)]
    if action.kind in PAIR_WHY or action.kind == ActionKind.CONFLICT:
        return _pair_entries(action, spec, run_id, outcome.new_conflicts)
    if action.kind in {ActionKind.DELETE, ActionKind.UNLINK}:
        return [_removal_entry(action, spec, run_id)]
    return []


def _entry(action: Action, side: str, kind: str, *, why: str, changes: dict[str, Any], run_id: str,
           link: Link | None = None) -> HistoryEntry:
    source_id = link.source_id if link else action.source_id or ""
    target_id = link.target_id if link else action.target_id or ""
    if action.note:
        why = f"{why}; {action.note}"
    return HistoryEntry(action.dataflow, source_id, target_id, side, kind, why, changes, run_id)


def _create_entry(action: Action, created: Link, run_id: str) -> HistoryEntry:
    values = created.source_values if action.side == "target" else created.target_values
    written = action.source_values if action.side == "target" else action.target_values
    # An empty property of a new record says nothing (and costs a row its size).
    changes = {prop: {"old": None, "new": value} for prop, value in (written or values).items() if value is not None}
    return _entry(action, action.side, "create", why=f"new in the {other(action.side)}: created in the {action.side}",
                  changes=changes, run_id=run_id, link=created)


def _pair_entries(action: Action, spec: DataflowSpec, run_id: str, new_conflicts: int | None) -> list[HistoryEntry]:
    settled = {c.prop: c for c in action.conflicts if c.resolution != "manual"}
    entries = []
    for side, changes in (("target", action.target_changes), ("source", action.source_changes)):
        if changes:
            props = {prop: _property_change(old, new, settled.get(prop), spec, other(side))
                     for prop, (old, new) in changes.items()}
            entries.append(_entry(action, side, str(action.kind), why=_pair_why(action, side, settled, spec),
                                  changes=props, run_id=run_id))
    if not entries and action.kind in {ActionKind.LINK, ActionKind.RELINK}:
        entries.append(_entry(action, "state", str(action.kind), why=PAIR_WHY[action.kind], changes={}, run_id=run_id))
    manual = [c for c in action.conflicts if c.resolution == "manual"]
    # new_conflicts counts the settled ones too; a manual one still waiting as it was is not recorded again
    if manual and (new_conflicts is None or new_conflicts > len(settled)):
        entries.append(_entry(action, "state", "conflict",
                              why="changed on both sides: left for a person (policy manual)",
                              changes={c.prop: _conflict_values(c) for c in manual}, run_id=run_id))
    return entries


def _pair_why(action: Action, side: str, settled: dict[str, ConflictInfo], spec: DataflowSpec) -> str:
    changes = action.target_changes if side == "target" else action.source_changes
    parts = [PAIR_WHY.get(action.kind, "")] if PAIR_WHY.get(action.kind) else []
    if set(changes) - set(settled):
        parts.append(f"changed in the {other(side)}")
    lost = sorted(prop for prop in changes if prop in settled)
    if lost:
        parts.append(f"conflict on {', '.join(lost)} settled by {spec.conflicts} (the {other(side)} won)")
    return "; ".join(parts)


def _property_change(old: Any, new: Any, conflict: ConflictInfo | None, spec: DataflowSpec, origin: str
                     ) -> dict[str, Any]:
    """One property's change on the side written; a settled conflict keeps the losing value (`old`)."""
    if conflict is None:
        return {"old": old, "new": new, "why": f"changed in the {origin}"}
    return {"old": old, "new": new, "why": f"conflict settled by {spec.conflicts}", "policy": str(spec.conflicts),
            "winner": conflict.resolution, "lost": old, "base": conflict.base}


def _conflict_values(conflict: ConflictInfo) -> dict[str, Any]:
    return {"base": conflict.base, "source": conflict.source_value, "target": conflict.target_value}


def _removal_entry(action: Action, spec: DataflowSpec, run_id: str) -> HistoryEntry:
    link = action.link
    if action.kind == ActionKind.DELETE:
        # The deleted record's last-synced values: what a person needs to make it again.
        kept = (link.target_values if action.side == "target" else link.source_values) if link else {}
        changes = {prop: {"old": value, "new": None} for prop, value in kept.items()}
        return _entry(action, action.side, "delete", why=f"{action.reason} (deletes.policy: {spec.delete_policy})",
                      changes=changes, run_id=run_id)
    return _entry(action, "state", "unlink", why=action.reason or "unlinked", changes={}, run_id=run_id)


# -- an operator's changes (mapsync links) -------------------------------------------------------------

def operator_entry(link: Link, kind: str, why: str, changes: dict[str, Any] | None = None) -> HistoryEntry:
    """An operator's change to a pair: its own run id, as each command is a run of its own."""
    return HistoryEntry(link.dataflow, link.source_id, link.target_id, "state", kind, why, changes or {},
                        run_id=f"operator-{uuid.uuid4().hex}")


def resolve_changes(conflicts: list[Conflict], use: str) -> dict[str, Any]:
    """A resolve's properties: both values, the winner and the value that loses (written on the next run)."""
    return {c.prop: {"base": c.base, "source": c.source_value, "target": c.target_value, "winner": use,
                     "lost": c.target_value if use == "source" else c.source_value} for c in conflicts}


# -- retention ------------------------------------------------------------------------------------------

def prune_history(store: StateStore, dataflow: str, keep_days: int, lock: RunLock) -> int:
    """At the end of a dataflow's apply, under its lock: forget one bounded batch of entries older than
    `keep_days` (a later apply takes the rest); return how many went."""
    cutoff = (datetime.now(UTC) - timedelta(days=keep_days)).isoformat(timespec="microseconds")
    with store.transaction():
        lock.check()
        return store.prune_history(dataflow, cutoff)
