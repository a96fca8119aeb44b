"""The planner's one record at a time (plan --id, apply --id, apply --plan): just the records named, read
by id and planned as a full run would plan them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from mapsync.connectors.base import Change
from mapsync.errors import ConnectorError
from mapsync.state.base import Link
from mapsync.sync._plan_base import PlannerBase
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.scan import TargetSeen, modified_of


class ByIdMixin(PlannerBase):
    """Plans just the records `only_ids` names."""

    def _planned_by_id(self) -> Iterator[Action]:
        """Just the records named by `only_ids` (a source or a target id each), read by id and planned as a
        full run would plan them; no other record is read, and no cursor moves."""
        wanted = set(self.only_ids or [])
        self._queued_targets &= wanted  # _creates_back reads queued target records again: only these
        planned: set[str] = set()  # source ids, so a pair named by both its ids is planned once
        back: dict[str, dict[str, Any]] = {}  # unlinked target records named: created back, if the mapping asks
        for record_id in dict.fromkeys(self.only_ids or []):
            try:
                yield from self._plan_by_id(record_id, planned, back)
            except ConnectorError as exc:
                yield self._fail(record_id, None, f"could not read it: {exc}", exc.status)
        self.scan.unlinked_targets = {i: r for i, r in back.items() if i not in self._claimed}
        self._note_retired_targets([Change(i, modified_of(self.spec.target_schema, r) or "", r)
                                    for i, r in self.scan.unlinked_targets.items()])
        yield from self._creates_back()
        yield from self._guarded_deletes()

    def _plan_by_id(self, record_id: str, planned: set[str], back: dict[str, dict[str, Any]]) -> Iterator[Action]:
        link = self.store.link_by_source(self.name, record_id) or self.store.link_by_target(self.name, record_id)
        if link is not None:
            if link.source_id not in planned:
                planned.add(link.source_id)
                yield from self._plan_linked_by_id(link)
            return
        source = self.source.read(self.spec.source.entity, record_id)
        if source is not None:
            if record_id not in planned:
                planned.add(record_id)
                if self.spec.match and not self.scan.unlinked_targets:
                    self._list_unlinked_targets()  # match candidates: only a listing finds them
                yield from self._plan_source_record(source, modified_of(self.spec.source_schema, source) or "", None)
            return
        target = self.target.read(self.spec.target.entity, record_id)
        if target is not None and self.mapper.owns_target(target):
            if self._target_in_scope(target):  # else out of scope (target_where): nothing to do
                back[record_id] = target
            return
        yield Action(ActionKind.MISSING, self.name, reason=f"{record_id}: not found on either side (neither a "
                     f"{self.spec.source.label} nor a {self.spec.target.label} of this dataflow)")

    def _plan_linked_by_id(self, link: Link) -> Iterator[Action]:
        """Both records of a pair read now: merged three-way, or the delete policy when one is gone."""
        source = self.source.read(self.spec.source.entity, link.source_id)
        target = self.target.read(self.spec.target.entity, link.target_id)
        left = None if target is None or source is None else self._left_scope_of_pair(source, target)
        if target is None or source is None or left is not None:
            gone, why = left or ("target" if target is None else "source", None)
            for action in self._deletion(link, gone=gone, why=why):
                # What was read of the side that is left: a saved plan compares its change marker.
                self.scan.deletes.append(replace(action, source_record=source, target_record=target,
                                                 source_modified=modified_of(self.spec.source_schema, source)))
            return
        target_modified = modified_of(self.spec.target_schema, target) or ""
        self.scan.target_changed[link.target_id] = TargetSeen(target, target_modified)
        yield from self._plan_source_record(source, modified_of(self.spec.source_schema, source) or "", link)
