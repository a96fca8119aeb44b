"""The planner's records with no partner: matched by the mapping's keys, created in the target, or
created back in the source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mapsync.errors import ConnectorError, MappingError
from mapsync.mapping.paths import get_path, split
from mapsync.state.base import Link
from mapsync.sync._plan_base import PlannerBase
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.merge import merge
from mapsync.sync.scan import modified_of


class MatchingMixin(PlannerBase):
    """Matches, creates and creates back the records that have no partner."""

    def _plan_unlinked(self, source_id: str, record: dict[str, Any], modified: str,
                       values: dict[str, Any]) -> Iterator[Action]:
        label = self._label(record)
        entry = self._retired_source(source_id)
        if entry is not None and source_id not in self._retired_resolved:
            came_back = self._relink_source(entry, record, modified, values)
            if came_back is not None:
                yield came_back
                return
            if self._kept_apart(entry):
                return  # its partner was deleted under `unlink`: no new partner until someone relinks it
        if ("target", source_id) not in self._pending and self.spec.match:
            candidates, keys = self._match(values)
            problem = self._ambiguity(candidates, keys)
            if problem:
                yield Action(ActionKind.AMBIGUOUS, self.name, source_id, label=label,
                             reason=f"{problem}; link it by hand with `mapsync links relink`")
                return
            if candidates:
                yield self._link_match(source_id, record, modified, values, candidates[0])
                return
        if self.spec.create not in {"target", "both"}:
            return
        yield Action(ActionKind.CREATE, self.name, source_id, None, side="target", label=label,
                     target_changes={p: (None, v) for p, v in self.mapper.create_values(values).items()
                                     if v is not None},
                     source_record=record, source_values=values, source_modified=modified,
                     body=self.mapper.create_body(values))

    def _ambiguity(self, candidates: list[str], keys: list[str]) -> str:
        """Why a match cannot be trusted, or "" when it can (one candidate, not taken by another record)."""
        entity, shared = self.spec.target.entity, ", ".join(keys)
        if len(candidates) > 1:
            return f"{len(candidates)} {entity} records share {shared}: {', '.join(sorted(candidates))}"
        if candidates and candidates[0] in self._claimed:
            other = self._claimed[candidates[0]]
            return (f"{entity} {candidates[0]} has the same {shared}, but {self.spec.source.entity} {other} "
                    f"matched it already")
        return ""

    def _link_match(self, source_id: str, record: dict[str, Any], modified: str, values: dict[str, Any],
                    target_id: str) -> Action:
        self._claimed[target_id] = source_id
        target_record = self.scan.unlinked_targets.pop(target_id)
        target_values = self.mapper.project_target(target_record)
        link = Link(self.name, source_id, target_id, source_version=modified,
                    target_version=modified_of(self.spec.target_schema, target_record))
        result = merge(self.spec.rows, base_source=None, base_target=None, source=values, target=target_values,
                       policy=self.spec.conflicts)
        return self._pair_action(link, result, source_record=record, source_values=values,
                                 target_record=target_record, target_values=target_values, source_modified=modified,
                                 kind=ActionKind.LINK)

    def _match(self, values: dict[str, Any]) -> tuple[list[str], list[str]]:
        index = self._build_match_index()
        for keys in self.spec.match:
            key = tuple(values.get(k) for k in keys)
            if any(v in (None, "") for v in key):
                continue
            found = index[tuple(keys)].get(key, [])
            if found:
                return found, keys
        return [], []

    def _build_match_index(self) -> dict[tuple[str, ...], dict[tuple[Any, ...], list[str]]]:
        if self._match_index is None:
            self._match_index = {tuple(keys): {} for keys in self.spec.match}
            # A candidate of another dataflow over the same entity is never matched, even with equal keys.
            for target_id, record in self.rules.linkable(self.scan.unlinked_targets).items():
                try:
                    values = self.mapper.project_target(record)
                except MappingError:
                    continue  # a record we cannot read cannot be matched either
                for keys, index in self._match_index.items():
                    index.setdefault(tuple(values.get(k) for k in keys), []).append(target_id)
        return self._match_index

    def _creates_back(self) -> Iterator[Action]:
        """Target records with no partner, created in the source when the mapping asks for it."""
        if self.spec.create not in {"source", "both"}:
            return
        self._reread_queued_targets()
        for target_id, record in list(self.scan.unlinked_targets.items()):
            if target_id in self._claimed:
                continue
            came_back = self._relink_target(target_id, record)
            if came_back is not None:
                yield came_back
                continue
            values = self.mapper.project_target(record)
            yield Action(ActionKind.CREATE, self.name, None, target_id, side="source",
                         label=str(get_path(record, split(self.spec.rows[0].target)) or ""),
                         source_changes={p: (None, v) for p, v in self.mapper.create_values(values, "source").items()
                                         if v is not None},
                         target_record=record, target_values=values)

    def _reread_queued_targets(self) -> None:
        for target_id in sorted(self._queued_targets - set(self.scan.unlinked_targets)):
            if self.store.link_by_target(self.name, target_id) is not None:
                continue
            try:
                record = self.target.read(self.spec.target.entity, target_id)
            except ConnectorError:
                continue  # still unreachable: it stays in the ledger for the next run
            if record is not None and self.mapper.owns_target(record) and self._target_in_scope(record):
                self.scan.unlinked_targets[target_id] = record
