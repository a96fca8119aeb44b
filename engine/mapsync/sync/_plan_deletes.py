"""The planner's deletions: the delete policy for a record whose partner is gone, the guard that refuses to
delete more than a set share of a dataflow's links in one run, and what a complete apply settles."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import assert_never

from mapsync.errors import ConnectorError
from mapsync.spec.model import DeletePolicy
from mapsync.state.base import GuardBaseline, Link, RetiredLink
from mapsync.sync._plan_base import PlannerBase
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.scan import modified_of

# How long a retired link from before the guard's baseline is kept for a record that may come back.
RETIRED_RETENTION = timedelta(days=30)


@dataclass
class GuardState:
    """What the delete guard measures against, read once when the dataflow's plan starts."""

    baseline: GuardBaseline | None
    links: int  # the links at the last confirmed point (or now, before any baseline)
    earlier: int  # links removed since that point
    share: float
    share_name: str  # where the share comes from, for the message
    started_at: str

    @property
    def allowed(self) -> int:
        return max(1, math.floor(self.share * self.links))


class DeletesMixin(PlannerBase):
    """Applies the delete policy and the guard; settles a complete apply."""

    def _deletion(self, link: Link, gone: str, why: str | None = None) -> list[Action]:
        """What the delete policy makes of a pair whose `gone` side's record no longer exists (or, `why` says,
        left its filter: handled alike)."""
        other = "target" if gone == "source" else "source"
        entity = self.spec.target.entity if other == "target" else self.spec.source.entity
        reason = why or f"gone from the {gone}"
        policy = self.spec.delete_policy
        match policy:
            case DeletePolicy.IGNORE:
                return []
            case DeletePolicy.PROPAGATE if self._can_delete(other, entity):
                return [Action(ActionKind.DELETE, self.name, link.source_id, link.target_id, side=other, link=link,
                               reason=reason)]
            case DeletePolicy.PROPAGATE:
                reason += f"; {entity} records cannot be deleted through the API, so the link is only removed"
            case DeletePolicy.RECREATE:
                reason += self._recreate_note(link, gone)
            case DeletePolicy.UNLINK:
                pass
            case _:
                assert_never(policy)
        return [Action(ActionKind.UNLINK, self.name, link.source_id, link.target_id, side=other, link=link,
                       reason=reason)]

    def _can_delete(self, side: str, entity: str) -> bool:
        connector = self.target if side == "target" else self.source
        return connector.entities()[entity].can_delete

    def _recreate_note(self, link: Link, gone: str) -> str:
        if self._recreates(gone):
            return f"; created again from {self.spec.source.entity} {link.source_id}"
        if gone == "target":
            return (f"; not created again (deletes.policy recreate makes a new {self.spec.target.entity} for a "
                    f"deleted one, and this dataflow's create is {self.spec.create!r})")
        return ""

    def _guarded_deletes(self) -> Iterator[Action]:
        deletes = self.scan.deletes
        if not deletes:
            return
        guard = self._guard
        assert guard is not None, "actions() reads the guard first"
        removed = guard.earlier + len(deletes)
        if removed > guard.allowed:
            self.scan.guard_tripped = True
            yield Action(ActionKind.GUARD, self.name, reason=self._guard_message(guard, len(deletes)))
            return
        yield from deletes
        yield from self._recreated(deletes)

    def _recreates(self, gone: str) -> bool:
        return (self.spec.delete_policy == DeletePolicy.RECREATE and gone == "target"
                and self.spec.create in {"target", "both"})

    def _recreated(self, deletes: list[Action]) -> Iterator[Action]:
        """Policy recreate: each deleted target record made again from its source record, in the run the
        deletion is seen, after the unlink (and through the usual crash-safe create)."""
        for unlink in deletes:
            if unlink.kind != ActionKind.UNLINK or unlink.side != "source" or not self._recreates("target"):
                continue
            source_id = unlink.source_id or ""
            listed = self._survivors.get(source_id)
            try:
                record = listed[0] if listed else self.source.read(self.spec.source.entity, source_id)
            except ConnectorError as exc:
                yield self._fail(source_id, None, f"could not read it to create its {self.spec.target.entity} "
                                 f"again: {exc}", exc.status)
                continue
            if record is None:
                continue  # gone as well: nothing to create from
            modified = listed[1] if listed else modified_of(self.spec.source_schema, record) or ""
            self._retired_resolved.add(source_id)  # its retired link is this run's unlink, not a record back
            yield from self._plan_source_record(record, modified, None)

    def _guard_message(self, guard: GuardState, now: int) -> str:
        total, removed = guard.links, guard.earlier + now
        share = removed / total if total else 1.0
        needed = min(1.0, math.ceil(share * 100) / 100)
        while math.floor(needed * total) < removed and needed < 1.0:  # float rounding: never suggest too little
            needed = min(1.0, needed + 0.01)
        earlier = (f", {removed} with the {guard.earlier} removed since the last confirmed full scan"
                   if guard.earlier else "")
        return (f"refusing to delete or unlink {now} of {total} links{earlier} ({share:.0%}; {guard.share_name} "
                f"allows {guard.share:.0%}, at most {guard.allowed}): a broken or empty answer must never wipe a "
                f"system. If the deletions are real, run `mapsync apply --full --max-delete-share {needed:.2f}` "
                f"once, or raise deletes.max_share in {self.spec.file}.")

    def _read_guard(self) -> GuardState:
        baseline = self.store.get_guard_baseline(self.name)
        if self.max_delete_share is not None:
            share, share_name = self.max_delete_share, "--max-delete-share"
        else:
            share, share_name = self.spec.delete_max_share, "deletes.max_share"
        started_at = datetime.now(UTC).isoformat(timespec="microseconds")
        if baseline is None:
            return GuardState(None, self.store.count_links(self.name), 0, share, share_name, started_at)
        earlier = self.store.count_retired(self.name, since=baseline.confirmed_at)
        return GuardState(baseline, baseline.links, earlier, share, share_name, started_at)

    def _confirms_baseline(self) -> bool:
        """A complete full scan that found nothing gone, or a run the operator allowed a share for."""
        return self.max_delete_share is not None or (self.scan.full_source and not self.scan.deletes)

    def settle(self) -> None:
        """After a complete apply: forget retired links found dead, and move the guard's baseline."""
        guard = self._guard
        assert guard is not None and self.scan.complete, "settle() follows a complete actions()"
        with self.store.transaction():
            if self.scan.retired_dead:
                self.store.drop_retired(self.name, source_ids=self.scan.retired_dead)
            if self.scan.guard_tripped:
                return
            # With the cursors (saved in this transaction): what the next run will list again.
            self.store.set_scan_tail(self._tail_to_keep(self.scan.source_cursor))
            if self._confirms_baseline():
                self.store.set_guard_baseline(GuardBaseline(self.name, self.store.count_links(self.name)))
                counted_from = guard.started_at
            elif guard.baseline is None:
                # The first run with deletions: measure from the links it started with.
                self.store.set_guard_baseline(GuardBaseline(self.name, guard.links, guard.started_at))
                counted_from = guard.started_at
            else:
                counted_from = guard.baseline.confirmed_at
            # Only entries the guard no longer counts expire, so the guard's count never falls by age.
            expired = (datetime.now(UTC) - RETIRED_RETENTION).isoformat(timespec="microseconds")
            stamp = min(counted_from, expired)
            kept_apart = self._kept_apart_before(stamp)
            self.store.drop_retired_before(self.name, stamp)
            for entry in kept_apart:  # the memory that keeps a pair apart does not expire
                self.store.retire_link(entry)

    def _kept_apart_before(self, stamp: str) -> list[RetiredLink]:
        if self.spec.delete_policy != DeletePolicy.UNLINK or not self._has_retired:
            return []
        return [e for e in self.store.iter_retired(self.name) if e.retired_at < stamp and self._kept_apart(e)]
