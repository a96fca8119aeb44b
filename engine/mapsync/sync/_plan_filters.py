"""The planner's filters: `where:` on the source record, `target_where:` on the target record.

Only records for which a filter is truthy (JMESPath truthiness: not null, false, "", [] or {}) are in scope.
A record out of scope is never created, matched or linked; a linked record that leaves the scope is handled
as if it had left its system (the delete policy and the guard decide, `_left_scope`); one that enters the
scope is matched or created as usual, or relinked to the partner it had before it left (retired links).
Under `deletes.policy: ignore` nothing is ever removed, so a linked pair stays linked and synced whichever
side leaves its scope: the filters then only decide which records without a partner are matched or created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jmespath.exceptions import JMESPathError

from mapsync.errors import MappingError
from mapsync.mapping.paths import make_predicate
from mapsync.spec._expression import shown
from mapsync.spec.model import DataflowSpec, DeletePolicy
from mapsync.state.base import Link
from mapsync.sync._plan_base import PlannerBase
from mapsync.sync.actions import Action, ActionKind


@dataclass(frozen=True)
class Scope:
    """One filter, compiled once: `holds(record)` says whether the record is in scope."""

    key: str  # where | target_where
    expression: str
    where: str  # file:line, for a record on which the expression cannot be evaluated
    test: Callable[[Mapping[str, Any]], bool]  # JMESPath truthiness of the expression on a record

    @property
    def why_left(self) -> str:
        return f"left the filter ({self.key}: {self.expression})"

    def holds(self, record: Mapping[str, Any]) -> bool:
        try:
            return self.test(record)
        except (JMESPathError, TypeError, ValueError, OverflowError) as exc:
            # jmespath lets a few odd values escape as bare Python errors (`a > b` on a number and a string)
            raise MappingError(f"{self.where}: {self.key} {shown(self.expression)} cannot be evaluated on it: "
                               f"{exc}") from None


def scope_of(spec: DataflowSpec, side: str) -> Scope | None:
    """The dataflow's filter on `side` (source: `where`, target: `target_where`), or None when it has none."""
    key, expression, line = (("where", spec.where, spec.where_line) if side == "source"
                             else ("target_where", spec.target_where, spec.target_where_line))
    if not expression:
        return None
    return Scope(key, expression, f"{spec.file}:{line}", make_predicate(expression))


class FiltersMixin(PlannerBase):
    """Keeps records out of scope out of the plan, and removes links whose record left the scope."""

    @cached_property
    def _source_scope(self) -> Scope | None:
        return scope_of(self.spec, "source")

    @cached_property
    def _target_scope(self) -> Scope | None:
        return scope_of(self.spec, "target")

    def _source_in_scope(self, record: Mapping[str, Any]) -> bool:
        """Whether a source record may be linked (one whose filter cannot be evaluated may not)."""
        return _quietly_holds(self._source_scope, record)

    def _target_in_scope(self, record: Mapping[str, Any]) -> bool:
        """Whether a target record may be matched, created back or linked (not when the filter fails on it)."""
        return _quietly_holds(self._target_scope, record)

    # -- source records, as each enters the plan (_plan_source_record) ----------------------------------

    def _outside_scope(self, source_id: str, record: dict[str, Any], link: Link | None) -> list[Action] | None:
        """None when the source record is to be planned as usual; else what follows instead (maybe nothing)."""
        if link is not None and link.source_id in self._scope_held:
            return []  # its partner's target_where failed: reported once, the pair waits for the next run
        scope = self._source_scope
        if scope is None or (link is not None and self._keeps_pairs()):
            return None
        try:
            if scope.holds(record):
                return None
        except MappingError as exc:
            return [self._fail(source_id, link.target_id if link else None, f"cannot filter it: {exc}", None,
                               label=self._label(record))]
        if link is None:
            # A record that failed or waited last time and is out of scope now: it leaves the ledger.
            return [Action(ActionKind.DROP, self.name, source_id, reason=f"{scope.why_left} since it was queued")
                    ] if source_id in self._queued else []
        if link.source_id not in self._target_gone:  # else its partner's deletion is planned already
            self.scan.deletes.extend(self._left_scope(link, "source"))
        return []

    # -- target records, as the scan of the target sees them ---------------------------------------------

    def _linked_targets_held(self) -> bool:
        """Whether a linked target record must pass a filter to stay linked (else it stays, whatever it holds)."""
        return self._target_scope is not None and not self._keeps_pairs()

    def _linked_target_stays(self, link: Link, record: dict[str, Any]) -> bool:
        """Whether a linked target record is in scope; when it left, its removal is planned."""
        scope = self._target_scope
        if scope is None or not self._linked_targets_held():
            return True
        try:
            if scope.holds(record):
                return True
        except MappingError as exc:
            self._scope_failures.append(self._fail(link.source_id, link.target_id, f"cannot filter its "
                                                   f"{self.spec.target.entity}: {exc}", None))
            self._scope_held.add(link.source_id)
            return False
        self.scan.deletes.extend(self._left_scope(link, "target"))
        return False

    def _left_scope(self, link: Link, gone: str) -> list[Action]:
        """The delete policy for a pair whose `gone` side's record left its filter, as if it were deleted."""
        scope = self._source_scope if gone == "source" else self._target_scope
        assert scope is not None, "only a side with a filter leaves it"
        deletion = self._deletion(link, gone, why=scope.why_left)
        if gone == "target":
            self._target_gone.add(link.source_id)
        elif deletion:
            self._source_disappeared.add(link.target_id)
        return deletion

    def _left_scope_of_pair(self, source: dict[str, Any], target: dict[str, Any]) -> tuple[str, str] | None:
        """For a pair read by id: (the side whose record left its filter, why), or None when both are in scope
        (or a filter cannot be evaluated: the record's own plan reports that)."""
        if self._keeps_pairs():
            return None
        for gone, scope, record in (("source", self._source_scope, source), ("target", self._target_scope, target)):
            if scope is not None and not _quietly_holds(scope, record, when_unknown=True):
                return gone, scope.why_left
        return None

    def _keeps_pairs(self) -> bool:
        """Policy ignore removes no link: a linked pair stays synced whichever side leaves its scope."""
        return self.spec.delete_policy == DeletePolicy.IGNORE

    # -- what the filters add to the plan ----------------------------------------------------------------

    def _filter_failures(self) -> Iterator[Action]:
        yield from self._scope_failures
        self._scope_failures.clear()

    def _targets_back_in_scope(self) -> Iterator[Action]:
        """A target record that left `target_where` is relinked to its old partner when it is listed in scope
        again (a dataflow that creates back does this for every target record, in _creates_back)."""
        if self._target_scope is None or self.spec.create in {"source", "both"}:
            return
        for target_id, (entry, record) in list(self._retired_targets.items()):
            if entry.gone == "target" and target_id not in self._claimed:
                came_back = self._relink_target(target_id, record)
                if came_back is not None:
                    yield came_back


def _quietly_holds(scope: Scope | None, record: Mapping[str, Any], *, when_unknown: bool = False) -> bool:
    if scope is None:
        return True
    try:
        return scope.holds(record)
    except MappingError:
        return when_unknown
