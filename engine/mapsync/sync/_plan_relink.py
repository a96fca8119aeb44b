"""The planner's records that come back: a record seen again with no link whose link was retired gets its
old partner back, if that still exists and is linked to nothing else."""

from __future__ import annotations

from typing import Any

from mapsync.connectors.base import Change
from mapsync.errors import ConnectorError, MappingError
from mapsync.mapping.mapper import UnresolvedReference
from mapsync.spec.model import DeletePolicy
from mapsync.state.base import RetiredLink
from mapsync.sync._plan_base import PlannerBase
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.merge import merge
from mapsync.sync.scan import modified_of


class RelinkMixin(PlannerBase):
    """Relinks records that come back, and finds retired links whose partner is gone."""

    def _prefetch_retired(self, source_ids: list[str]) -> None:
        wanted = [i for i in source_ids if i not in self._retired]
        if not self._has_retired or not wanted:
            return
        self._retired.update(dict.fromkeys(wanted))
        for entry in self.store.retired_by_source(self.name, wanted):
            self._retired[entry.source_id] = entry

    def _retired_source(self, source_id: str) -> RetiredLink | None:
        self._prefetch_retired([source_id])
        return self._retired.get(source_id)

    def _note_retired_targets(self, unlinked: list[Change]) -> None:
        if not self._has_retired or not unlinked:
            return
        records = {c.id: c.record for c in unlinked if c.record is not None}
        for entry in self.store.retired_by_target(self.name, list(records)):
            self._retired_targets[entry.target_id] = (entry, records[entry.target_id])

    def _gone(self, entry: RetiredLink) -> None:
        self.scan.retired_dead.append(entry.source_id)

    def _relink_source(self, entry: RetiredLink, record: dict[str, Any], modified: str,
                       values: dict[str, Any]) -> Action | None:
        """A source record seen again with no link, whose link was retired: its old target record back, if
        that still exists and is linked to nothing else (None: it is gone, match or create as usual)."""
        self._retired_resolved.add(entry.source_id)
        target_id, entity = entry.target_id, self.spec.target.entity
        listed = self._retired_targets.get(target_id)
        partner: dict[str, Any] | None
        if target_id in self._claimed or self.store.link_by_target(self.name, target_id) is not None:
            partner = None
        elif listed is not None and listed[0].source_id == entry.source_id:
            partner = listed[1]
        else:
            try:
                partner = self.target.read(entity, target_id)
            except ConnectorError as exc:
                # Creating instead could make a duplicate: try again next run.
                return self._fail(entry.source_id, target_id, f"could not read its former partner {entity} "
                                  f"{target_id}: {exc}", exc.status, label=self._label(record))
        if partner is not None and (self.rules.refusal(target_id, partner) or not self._target_in_scope(partner)):
            partner = None  # no longer this dataflow's record (or linked elsewhere, or out of scope): never taken
        if partner is None:
            if not self._kept_apart(entry):
                self._gone(entry)
            return None
        return self._relink(entry, record, modified, values, partner)

    def _kept_apart(self, entry: RetiredLink) -> bool:
        """Policy unlink: a source record whose target was deleted gets no new partner, on no later run."""
        return self.spec.delete_policy == DeletePolicy.UNLINK and entry.gone == "target"

    def _relink_target(self, target_id: str, record: dict[str, Any]) -> Action | None:
        """The same for an unlinked target record of a dataflow that creates back."""
        listed = self._retired_targets.get(target_id)
        if listed is None or listed[0].source_id in self._retired_resolved:
            return None
        entry, entity = listed[0], self.spec.source.entity
        self._retired_resolved.add(entry.source_id)
        if self.store.link_by_source(self.name, entry.source_id) is not None or self.rules.refusal(target_id, record):
            self._gone(entry)
            return None
        try:
            source = self.source.read(entity, entry.source_id)
        except ConnectorError as exc:
            return self._fail(entry.source_id, target_id, f"could not read it to relink {self.spec.target.entity} "
                              f"{target_id}: {exc}", exc.status)
        if source is None:
            self._gone(entry)
            return None
        if not self._source_in_scope(source):
            return None  # out of scope (where): its retired link is kept for when it comes back in
        return self._relink_read_source(entry, source, record)

    def _relink_read_source(self, entry: RetiredLink, source: dict[str, Any], target_record: dict[str, Any]
                            ) -> Action:
        target_id = entry.target_id
        try:
            values = self.mapper.project_source(source, self.links)
        except UnresolvedReference as exc:
            return Action(ActionKind.DEFER, self.name, entry.source_id, target_id, label=self._label(source),
                          reason=f"waits for {exc.dataflow} {exc.record_id} to be linked ({exc.prop})")
        except MappingError as exc:
            return self._fail(entry.source_id, target_id, f"cannot map it: {exc}", None, label=self._label(source))
        return self._relink(entry, source, modified_of(self.spec.source_schema, source) or "", values,
                            target_record)

    def _relink(self, entry: RetiredLink, source_record: dict[str, Any], source_modified: str,
                source_values: dict[str, Any], target_record: dict[str, Any]) -> Action:
        """Restore the retired link, then merge three-way as for any linked pair: edits made meanwhile flow."""
        link = entry.as_link()
        self._claimed[link.target_id] = link.source_id
        self.scan.unlinked_targets.pop(link.target_id, None)
        try:
            target_values = self.mapper.project_target(target_record)
        except MappingError as exc:
            return self._fail(link.source_id, link.target_id, f"cannot read the target: {exc}", None)
        target_modified = modified_of(self.spec.target_schema, target_record) or ""
        result = merge(self.spec.rows, base_source=link.source_values, base_target=link.target_values,
                       source=source_values, target=target_values, policy=self.spec.conflicts,
                       newer="source" if source_modified >= target_modified else "target")
        return self._pair_action(link, result, source_record=source_record, source_values=source_values,
                                 target_record=target_record, target_values=target_values,
                                 source_modified=source_modified, kind=ActionKind.RELINK)

    def _find_retired_with_partner_gone(self) -> None:
        """On a full scan that confirms the baseline: retired links whose kept partner no longer exists."""
        for entry in list(self.store.iter_retired(self.name)):
            if entry.source_id in self._retired_resolved:
                continue
            try:
                if entry.gone == "source":
                    if entry.target_id in self._retired_targets:
                        continue  # listed in this scan
                    partner = self.target.read(self.spec.target.entity, entry.target_id)
                else:
                    partner = self.source.read(self.spec.source.entity, entry.source_id)
            except ConnectorError:
                continue  # unknown: kept for another scan
            if partner is None:
                self._gone(entry)
