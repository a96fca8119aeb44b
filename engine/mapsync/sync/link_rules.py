"""Which target records a dataflow may link: one home for the checks that every way of making a link goes
through (a match in the planner, a retired link restored, `mapsync links relink`).

A target record may be linked only when it exists, is of the dataflow's entity and carries its constants
(`kind: customer`), and is linked in no other dataflow over the same entity: a Custompms Customer is
either an Avdeling's or a Kunde's, never both, or the two dataflows would overwrite each other's values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mapsync.errors import PlanError
from mapsync.spec.model import DataflowSpec
from mapsync.sync.context import DataflowContext, UsesContext

# (dataflow, side): where another dataflow holds records of the same entity as this one's target
Rival = tuple[str, str]


def rivals_of(dataflows: Iterable[DataflowSpec], spec: DataflowSpec) -> tuple[Rival, ...]:
    """The other dataflows (and their side) over the same connection and entity as `spec`'s target."""
    target = (spec.target.connection, spec.target.entity)
    return tuple((other.name, side_name) for other in dataflows if other.name != spec.name
                 for side_name, side in (("source", other.source), ("target", other.target))
                 if (side.connection, side.entity) == target)


@dataclass(frozen=True)
class LinkRules(UsesContext):
    ctx: DataflowContext
    rivals: tuple[Rival, ...] = ()

    def linked_elsewhere(self, target_ids: Iterable[str]) -> dict[str, str]:
        """target id -> the rival dataflow it is linked in, for those of `target_ids` that are."""
        ids = sorted(set(target_ids))
        found: dict[str, str] = {}
        if not ids:
            return found
        for dataflow, side in self.rivals:
            links = (self.store.get_links(dataflow, source_ids=ids) if side == "source"
                     else self.store.get_links(dataflow, target_ids=ids))
            for link in links:
                found.setdefault(link.source_id if side == "source" else link.target_id, dataflow)
        return found

    def linkable(self, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        """Those of the target records (by id) this dataflow may link: for the planner's match index."""
        owned = {i: r for i, r in records.items() if self.mapper.owns_target(r)}
        taken = self.linked_elsewhere(owned) if self.rivals else {}
        return {i: r for i, r in owned.items() if i not in taken}

    def refusal(self, target_id: str, record: Mapping[str, Any] | None) -> str:
        """Why the target record may not be linked in this dataflow ("" when it may)."""
        entity = self.spec.target.label
        if record is None:
            return f"there is no {entity} {target_id!r}"
        if not self.mapper.owns_target(record):
            constants = ", ".join(f"{k}: {v}" for k, v in self.spec.constants.items())
            return f"{entity} {target_id!r} is not one of this dataflow's records (those have {constants})"
        elsewhere = self.linked_elsewhere([target_id]).get(target_id)
        if elsewhere is not None:
            return f"{entity} {target_id!r} is linked in dataflow {elsewhere}; unlink it there first"
        return ""

    def check_pair(self, source_id: str, target_id: str) -> None:
        """Before linking two records by hand: both read now, and the pair allowed; PlanError says why not."""
        other = self.store.link_by_target(self.name, target_id)
        if other is not None and other.source_id != source_id:
            raise PlanError(f"{self.name}: target {target_id!r} is already linked to source {other.source_id!r}; "
                            f"unlink that first")
        if self.source.read(self.spec.source.entity, source_id) is None:
            raise PlanError(f"{self.name}: there is no {self.spec.source.label} {source_id!r}")
        problem = self.refusal(target_id, self.target.read(self.spec.target.entity, target_id))
        if problem:
            raise PlanError(f"{self.name}: {problem}")
