"""The planner's decision for one source record: projected (references settled by `on_missing`), merged
three ways with its partner, and checked against what the other system would refuse."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from mapsync.errors import ConnectorError, MappingError
from mapsync.mapping.mapper import UnresolvedReference
from mapsync.state.base import Link
from mapsync.sync._plan_base import PlannerBase
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.lookup import PlannedLinks
from mapsync.sync.merge import MergeResult, merge


class RecordMixin(PlannerBase):
    """Plans one record, and what the plan would leave linked."""

    def _plan_source_record(self, record: dict[str, Any], modified: str, link: Link | None) -> Iterator[Action]:
        source_id = self._source_id(record)
        instead = self._outside_scope(source_id, record, link)
        if instead is not None:
            yield from instead  # out of scope (where): never created or linked; a linked one left it
            return
        try:
            values, note = self._project_source(record, link)
        except UnresolvedReference as exc:
            yield Action(ActionKind.DEFER, self.name, source_id, link.target_id if link else None,
                         label=self._label(record),
                         reason=f"waits for {exc.dataflow} {exc.record_id} to be linked ({exc.prop})")
            return
        except MappingError as exc:
            yield self._fail(source_id, link.target_id if link else None, f"cannot map it: {exc}", None,
                             label=self._label(record))
            return
        for action in self._planned_source_record(source_id, record, modified, link, values):
            yield self._noted(action, note)

    def _project_source(self, record: dict[str, Any], link: Link | None) -> tuple[dict[str, Any], str]:
        """The record's canonical values, and a note when a reference row's record is gone and the row's
        `on_missing` settled it. A reference not linked *yet* raises UnresolvedReference: the record waits."""
        settled: dict[str, Any] = {}
        notes: list[str] = []
        while True:
            try:
                return self.mapper.project_source(record, self.links, settled), "; ".join(notes)
            except UnresolvedReference as exc:
                row = exc.row
                known = link is not None and link.source_values.get(row.target) is not None if row else False
                if row is None or row.on_missing == "wait" or row.target in settled \
                        or not self._reference_gone(row.dataflow or "", exc.record_id, known=known):
                    raise
                kept = row.on_missing == "keep"
                # keep: the last-synced value, so the source side looks unchanged and the target's value stays
                settled[row.target] = link.source_values.get(row.target) if kept and link else None
                notes.append(f"{row.dataflow} {exc.record_id} ({row.source}) is gone or unlinked: {row.target} "
                             f"{'kept as it is' if kept else 'set to null'} (on_missing: {row.on_missing})")

    def _reference_gone(self, dataflow: str, source_id: str, *, known: bool) -> bool:
        """Whether a referenced record with no link is gone or unlinked, rather than not linked *yet*: its
        dataflow unlinked it because its partner was deleted; or it was linked once (its dataflow retired the
        link, or this pair synced a value for the row: `known`) and no longer exists (read by id)."""
        key = (dataflow, source_id)
        if key not in self._references_gone:
            retired = self.store.retired_by_source(dataflow, [source_id])
            gone = retired[0].gone if retired else None
            exists = None if gone == "target" else self._referenced_exists(dataflow, source_id)
            self._references_gone[key] = (gone, exists)
        gone, exists = self._references_gone[key]
        if gone == "target":
            return True
        # Unreadable from here (another system): gone if its dataflow saw it disappear.
        return (exists is False and (gone is not None or known)) or (exists is None and gone is not None)

    def _referenced_exists(self, dataflow: str, source_id: str) -> bool | None:
        side = self.spec.referenced_sources.get(dataflow)
        if side is None or side.connection != self.spec.source.connection:
            return None  # another system: not read from here
        try:
            return self.source.read(side.entity, source_id) is not None
        except ConnectorError:
            return None

    def _noted(self, action: Action, note: str) -> Action:
        """A record synced with a reference settled by `on_missing`: the ledger says why, once."""
        if note and action.source_id and action.kind not in {ActionKind.FAIL, ActionKind.DEFER, ActionKind.AMBIGUOUS}:
            return replace(action, note=note, noted=self._ledger.get(action.source_id) == note)
        return action

    def _planned_source_record(self, source_id: str, record: dict[str, Any], modified: str, link: Link | None,
                               values: dict[str, Any]) -> Iterator[Action]:
        if link is None:
            yield from self._plan_unlinked(source_id, record, modified, values)
            return
        if source_id in self._target_gone:
            self._survivors[source_id] = (record, modified)  # for policy recreate
            return  # its partner was deleted: the delete policy decides, an update would only fail
        seen = self.scan.target_changed.pop(link.target_id, None)
        if seen is None and (link.state == "conflict" or source_id in self._queued):
            # The link keeps the old base for a manual conflict, not the target's value (and a queued
            # record may have failed halfway): read the target, or the source's side would look like the
            # only change and overwrite it.
            self._refresh_target(link)
            seen = self.scan.target_changed.pop(link.target_id, None)
        if seen is None and link.source_version == modified and values == link.source_values:
            yield Action(ActionKind.UNCHANGED, self.name, source_id, link.target_id)
            return
        target_values = link.target_values
        if seen is not None:
            try:
                target_values = self.mapper.project_target(seen.record)
            except MappingError as exc:
                yield self._fail(source_id, link.target_id, f"cannot read the target: {exc}", None)
                return
        newer = None if seen is None else ("source" if modified >= seen.modified else "target")
        result = merge(self.spec.rows, base_source=link.source_values, base_target=link.target_values,
                       source=values, target=target_values, policy=self.spec.conflicts, newer=newer)
        yield self._pair_action(link, result, source_record=record, source_values=values,
                                target_record=seen.record if seen else None, target_values=target_values,
                                source_modified=modified)

    def _pair_action(self, link: Link, result: MergeResult, *, source_record: dict[str, Any] | None,
                     source_values: dict[str, Any], target_record: dict[str, Any] | None,
                     target_values: dict[str, Any], source_modified: str | None,
                     kind: ActionKind | None = None) -> Action:
        """A linked pair merged three ways; `kind` names a pair just made (link, relink), whatever the merge
        found, else the merge decides."""
        changes_t = {p: (target_values.get(p), v) for p, v in result.to_target.items()}
        changes_s = {p: (source_values.get(p), v) for p, v in result.to_source.items()}
        if kind is not None:
            pass
        elif changes_t or changes_s:
            kind = ActionKind.UPDATE
        elif result.manual:
            kind = ActionKind.CONFLICT
        elif source_values != link.source_values or target_values != link.target_values:
            kind = ActionKind.REFRESH  # both sides agree but the link's record of them is stale: bookkeeping only
        else:
            kind = ActionKind.UNCHANGED
        label = str(source_values.get(self.spec.rows[0].target) or "")
        return Action(kind, self.name, link.source_id, link.target_id, label=label, target_changes=changes_t,
                      source_changes=changes_s, conflicts=result.conflicts, source_record=source_record,
                      target_record=target_record, source_values=source_values, target_values=target_values,
                      link=link, source_modified=source_modified)

    # -- what the other system would refuse, and what the plan would leave linked ----------------------

    def _refused(self, action: Action) -> Action | None:
        """A write whose body the receiving system would refuse (its entity schema says so), as a failed
        record; or the record waiting, when a value flowing back names a record not linked yet. None: the
        write goes ahead. Plan and apply both pass here, so they fail the same records alike."""
        if not action.writes or action.kind == ActionKind.DELETE:
            return None
        try:
            problem = self._write_problem(action)
        except UnresolvedReference as exc:
            return Action(ActionKind.DEFER, self.name, action.source_id, action.target_id, side=action.side,
                          label=action.label,
                          reason=f"waits for {exc.dataflow} {exc.record_id} to be linked ({exc.prop})")
        except MappingError as exc:
            problem = f"cannot map it back: {exc}"
        if problem is None:
            return None
        # Nothing of it is written (no change carried): it goes to the ledger and is read again next run.
        return Action(ActionKind.FAIL, self.name, action.source_id, action.target_id, side=action.side,
                      label=action.label,
                      reason=problem)

    def _write_problem(self, action: Action) -> str | None:
        """Checks the bodies the executor will send (built by the same mapper functions)."""
        mapper = self.mapper
        if action.kind == ActionKind.CREATE and action.side == "target":
            return mapper.target_check.create_problem(action.body or mapper.create_body(action.source_values))
        if action.kind == ActionKind.CREATE:
            return mapper.source_check.create_problem(mapper.create_back_body(action.target_record or {}, self.links))
        problems = []
        if action.target_changes:
            patch = mapper.target_patch({p: new for p, (_, new) in action.target_changes.items()}, None)
            problems.append(mapper.target_check.change_problem(patch))
        if action.source_changes and action.target_record is not None:
            body = mapper.source_changes(action.target_record, set(action.source_changes), self.links)
            problems.append(mapper.source_check.change_problem(body))
        return "; ".join(p for p in problems if p) or None

    def _note_planned(self, action: Action) -> None:
        """plan only: the links this action would make or remove, for the references of later dataflows
        (apply learns and forgets them as it performs each action)."""
        overlay = self.links
        if not isinstance(overlay, PlannedLinks):
            return
        source_id, target_id = action.source_id or "", action.target_id or ""
        if action.kind == ActionKind.CREATE:
            overlay.would_make(self.name, source_id or f"(new: {target_id})", target_id or f"(new: {source_id})")
        elif action.kind in {ActionKind.LINK, ActionKind.RELINK}:
            overlay.would_make(self.name, source_id, target_id)
        elif action.kind in {ActionKind.UNLINK, ActionKind.DELETE}:
            overlay.would_remove(self.name, source_id, target_id)
