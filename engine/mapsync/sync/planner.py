"""The planner: reads both sides of one dataflow and decides, record by record, what to do.

It streams: changes are read page by page and turned into actions as they come, holding in memory only
what a decision needs (target records changed since the last run, unlinked target records when matching
or creating back, the ids seen on a full scan).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, islice
from typing import Any

from mapsync.connectors.base import Change
from mapsync.errors import ConnectorError, MappingError
from mapsync.mapping.mapper import UnresolvedReference
from mapsync.mapping.paths import get_path, split
from mapsync.mapping.types import to_datetime
from mapsync.state.base import GuardBaseline, Link, RetiredLink
from mapsync.sync.actions import Action
from mapsync.sync.context import DataflowContext, UsesContext
from mapsync.sync.link_rules import LinkRules, Rival
from mapsync.sync.lookup import PlannedLinks
from mapsync.sync.merge import MergeResult, merge

CHUNK = 500
# How long a retired link from before the guard's baseline is kept for a record that may come back.
RETIRED_RETENTION = timedelta(days=30)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def modified_of(schema: dict[str, Any], record: dict[str, Any] | None) -> str | None:
    """The record's change marker (its modified timestamp, normalised to UTC)."""
    field_name = schema.get("x-modified")
    if not field_name or not record:
        return None
    try:
        return to_datetime(record.get(field_name))
    except MappingError:
        return None


@dataclass
class TargetSeen:
    record: dict[str, Any]
    modified: str


@dataclass
class Scan:
    """What one dataflow's scan of both sides found, besides the actions."""

    source_cursor: str | None = None
    target_cursor: str | None = None
    complete: bool = False
    guard_tripped: bool = False  # cursors then stay put, so the deletions are seen again once allowed
    target_changed: dict[str, TargetSeen] = field(default_factory=dict)
    unlinked_targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    deletes: list[Action] = field(default_factory=list)
    full_source: bool = False  # the source was listed from the start, so disappearances were seen
    retired_dead: list[str] = field(default_factory=list)  # source ids of retired links with a partner gone


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


class DataflowPlanner(UsesContext):
    def __init__(self, ctx: DataflowContext, *, full: bool = False, plan_only: bool = False,
                 max_delete_share: float | None = None, only_ids: list[str] | None = None,
                 rivals: tuple[Rival, ...] = ()) -> None:
        self.ctx = ctx
        self.rules = LinkRules(ctx, rivals)  # which target records may be matched or relinked
        self.full = full
        self.only_ids = only_ids  # plan just these records (either side's id), read by id; see _planned_by_id
        self.plan_only = plan_only
        self.max_delete_share = max_delete_share  # the operator's share for this run, over the mapping's
        self.scan = Scan()
        self._match_index: dict[tuple[str, ...], dict[tuple[Any, ...], list[str]]] | None = None
        self._claimed: dict[str, str] = {}  # target id -> the source id that matched it in this run
        self._queued: set[str] = set()
        self._pending: dict[tuple[str, str], str] = {}  # (side, record id) -> idempotency key
        self._queued_targets: set[str] = set()
        self._target_gone: set[str] = set()  # source ids whose linked target record was deleted
        # Policy recreate: the source records whose target was deleted, as listed (else read by id).
        self._survivors: dict[str, tuple[dict[str, Any], str]] = {}
        # (dataflow, source id) of a reference with no link -> (its retired link's gone side, whether it exists)
        self._references_gone: dict[tuple[str, str], tuple[str | None, bool | None]] = {}
        self._ledger: dict[str, str] = {}  # source id -> its reason in the ledger (a note is written once)
        self._source_disappeared: set[str] = set()  # target ids whose source is gone: the delete policy decides
        self._guard: GuardState | None = None
        # Retired links (see _relink_source): looked up a chunk at a time, only when the dataflow has any.
        self._has_retired = False
        self._retired: dict[str, RetiredLink | None] = {}  # source id -> its entry (None: looked up, none)
        self._retired_targets: dict[str, tuple[RetiredLink, dict[str, Any]]] = {}  # listed, unlinked, named
        self._retired_resolved: set[str] = set()  # source ids of entries relinked or found dead in this run

    # -- the whole plan ---------------------------------------------------------------------------------

    def actions(self) -> Iterator[Action]:
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
        self._scan_target()
        handled: set[str] = set()
        for action in chain(self._scan_source(handled), self._retries(handled), self._target_only_changes(),
                            self._creates_back(), self._guarded_deletes()):
            yield self._stamped(action)
        if self.scan.full_source and not self.scan.deletes and not self.plan_only:
            self._find_retired_with_partner_gone()
        self.scan.complete = True

    def _stamped(self, action: Action) -> Action:
        action = self._refused(action) or action
        self._note_planned(action)
        # The executor clears a dead letter only where there is one, and reuses a create's earlier
        # idempotency key without asking the store again: statements saved per record.
        action.queued = action.source_id in self._queued or (
            action.kind == "create" and action.side == "source" and action.target_id in self._queued_targets)
        if action.kind == "create":
            other_id = action.source_id if action.side == "target" else action.target_id
            action.idempotency_key = self._pending.get((action.side, other_id or ""))
        return action

    # -- target side ------------------------------------------------------------------------------------

    def _wants_unlinked_targets(self) -> bool:
        return bool(self.spec.match) or self.spec.create in {"source", "both"}

    def _scan_target(self) -> None:
        since = None if self.full else self.store.get_cursor(self.name, "target")
        cursor = since
        for chunk in chunked(self.target.list_changes(self.spec.target.entity, since), CHUNK):
            links = {link.target_id: link for link in self.store.get_links(self.name, target_ids=[c.id for c in chunk])}
            for change in chunk:
                cursor = max(cursor or change.modified, change.modified)
                self._see_target(change, links.get(change.id))
            self._note_retired_targets([c for c in chunk if c.id not in links and c.record is not None
                                        and not c.deleted and self.mapper.owns_target(c.record)])
        self.scan.target_cursor = cursor

    def _see_target(self, change: Change, link: Link | None) -> None:
        if change.deleted or change.record is None:
            if link is not None:
                self.scan.deletes.extend(self._deletion(link, gone="target"))
                self._target_gone.add(link.source_id)
            return
        if not self.mapper.owns_target(change.record):
            return
        if link is None:
            if self._wants_unlinked_targets():
                self.scan.unlinked_targets[change.id] = change.record
            return
        if link.target_version != change.modified:
            self.scan.target_changed[change.id] = TargetSeen(change.record, change.modified)

    # -- source side ------------------------------------------------------------------------------------

    def _scan_source(self, handled: set[str]) -> Iterator[Action]:
        since = None if self.full else self.store.get_cursor(self.name, "source")
        full_scan = since is None
        cursor = since
        for chunk in chunked(self.source.list_changes(self.spec.source.entity, since), CHUNK):
            links = {link.source_id: link for link in self.store.get_links(self.name, source_ids=[c.id for c in chunk])}
            self._prefetch_references(chunk)
            self._prefetch_retired([c.id for c in chunk if c.id not in links and not c.deleted])
            for change in chunk:
                cursor = max(cursor or change.modified, change.modified)
                if change.id in handled:
                    continue  # the overlap window or a page boundary repeated it
                handled.add(change.id)
                if change.deleted or change.record is None:
                    link = links.get(change.id)
                    if link is not None:
                        self._source_gone(link)
                    continue
                yield from self._plan_source_record(change.record, change.modified, links.get(change.id))
        self.scan.source_cursor = cursor
        self.scan.full_source = full_scan
        if full_scan:
            self._notice_disappeared_sources(handled)

    def _prefetch_references(self, chunk: list[Change]) -> None:
        for row in self.spec.rows:
            if row.dataflow and row.source_path:
                parts = split(row.source_path)
                ids = {str(v) for c in chunk if c.record and (v := get_path(c.record, parts)) not in (None, "")}
                self.links.prefetch(row.dataflow, ids)

    def _notice_disappeared_sources(self, seen: set[str]) -> None:
        for link in self.store.iter_links(self.name):
            if link.source_id not in seen:
                self._source_gone(link)

    def _source_gone(self, link: Link) -> None:
        deletion = self._deletion(link, gone="source")
        if deletion:
            self.scan.deletes.extend(deletion)
            self._source_disappeared.add(link.target_id)

    def _retries(self, handled: set[str]) -> Iterator[Action]:
        """Records that failed or waited last time, and creates a crash may have cut short: read by id."""
        for source_id in sorted(self._queued - handled):
            handled.add(source_id)
            try:
                record = self.source.read(self.spec.source.entity, source_id)
            except ConnectorError as exc:
                yield self._fail(source_id, None, f"could not read it for a retry: {exc}", exc.status)
                continue
            link = self.store.link_by_source(self.name, source_id)
            if record is None:
                yield Action("drop", self.name, source_id, link.target_id if link else None,
                             reason="gone from the source since it failed")
                continue
            if link is not None and link.target_id not in self.scan.target_changed:
                self._refresh_target(link)
            yield from self._plan_source_record(record, modified_of(self.spec.source_schema, record) or "", link)

    def _refresh_target(self, link: Link) -> None:
        try:
            record = self.target.read(self.spec.target.entity, link.target_id)
        except ConnectorError:
            return
        if record is not None:
            self.scan.target_changed[link.target_id] = TargetSeen(
                record, modified_of(self.spec.target_schema, record) or "")

    def _plan_source_record(self, record: dict[str, Any], modified: str, link: Link | None) -> Iterator[Action]:
        source_id = self._source_id(record)
        try:
            values, note = self._project_source(record, link)
        except UnresolvedReference as exc:
            yield Action("defer", self.name, source_id, link.target_id if link else None, label=self._label(record),
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
        if note and action.source_id and action.kind not in {"fail", "defer", "ambiguous"}:
            action.note = note
            action.noted = self._ledger.get(action.source_id) == note
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
            yield Action("unchanged", self.name, source_id, link.target_id)
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
                     target_values: dict[str, Any], source_modified: str | None) -> Action:
        changes_t = {p: (target_values.get(p), v) for p, v in result.to_target.items()}
        changes_s = {p: (source_values.get(p), v) for p, v in result.to_source.items()}
        if changes_t or changes_s:
            kind = "update"
        elif result.manual:
            kind = "conflict"
        elif source_values != link.source_values or target_values != link.target_values:
            kind = "refresh"  # both sides agree but the link's record of them is stale: bookkeeping only
        else:
            kind = "unchanged"
        label = str(source_values.get(self.spec.rows[0].target) or "")
        return Action(kind, self.name, link.source_id, link.target_id, label=label, target_changes=changes_t,
                      source_changes=changes_s, conflicts=result.conflicts, source_record=source_record,
                      target_record=target_record, source_values=source_values, target_values=target_values,
                      link=link, source_modified=source_modified)

    # -- records with no partner ------------------------------------------------------------------------

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
                yield Action("ambiguous", self.name, source_id, label=label,
                             reason=f"{problem}; link it by hand with `mapsync links relink`")
                return
            if candidates:
                yield self._link_match(source_id, record, modified, values, candidates[0])
                return
        if self.spec.create not in {"target", "both"}:
            return
        yield Action("create", self.name, source_id, None, side="target", label=label,
                     target_changes={p: (None, v) for p, v in self.mapper.create_values(values).items()
                                     if v is not None},
                     source_record=record, source_values=values, source_modified=modified)

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
        action = self._pair_action(link, result, source_record=record, source_values=values,
                                   target_record=target_record, target_values=target_values, source_modified=modified)
        action.kind = "link"
        return action

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
            yield Action("create", self.name, None, target_id, side="source",
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
            if record is not None and self.mapper.owns_target(record):
                self.scan.unlinked_targets[target_id] = record

    # -- target-only changes ----------------------------------------------------------------------------

    def _target_only_changes(self) -> Iterator[Action]:
        remaining = self.scan.target_changed
        for chunk in chunked(list(remaining), CHUNK):
            links = {link.target_id: link for link in self.store.get_links(self.name, target_ids=chunk)}
            for target_id in chunk:
                seen = remaining.pop(target_id)
                link = links.get(target_id)
                if link is None or target_id in self._source_disappeared:
                    continue  # no partner (any more): nothing to write it to
                if link.state == "conflict":
                    # Likewise the other way: the source's side of a manual conflict is not in the link.
                    try:
                        record = self.source.read(self.spec.source.entity, link.source_id)
                    except ConnectorError as exc:
                        yield self._fail(link.source_id, target_id, f"could not read it: {exc}", exc.status)
                        continue
                    if record is not None:
                        remaining[target_id] = seen
                        yield from self._plan_source_record(
                            record, modified_of(self.spec.source_schema, record) or "", link)
                        continue
                try:
                    target_values = self.mapper.project_target(seen.record)
                except MappingError as exc:
                    yield self._fail(link.source_id, target_id, f"cannot read the target: {exc}", None)
                    continue
                result = merge(self.spec.rows, base_source=link.source_values, base_target=link.target_values,
                               source=link.source_values, target=target_values, policy=self.spec.conflicts,
                               newer="target")
                yield self._pair_action(link, result, source_record=None, source_values=link.source_values,
                                        target_record=seen.record, target_values=target_values,
                                        source_modified=link.source_version)

    # -- deletes ----------------------------------------------------------------------------------------

    def _deletion(self, link: Link, gone: str) -> list[Action]:
        policy = self.spec.delete_policy
        if policy == "ignore":
            return []
        other = "target" if gone == "source" else "source"
        other_connector = self.target if other == "target" else self.source
        entity = self.spec.target.entity if other == "target" else self.spec.source.entity
        can_delete = other_connector.entities()[entity].can_delete
        if policy == "propagate" and can_delete:
            return [Action("delete", self.name, link.source_id, link.target_id, side=other, link=link,
                           reason=f"gone from the {gone}")]
        reason = f"gone from the {gone}"
        if policy == "propagate":
            reason += f"; {entity} records cannot be deleted through the API, so the link is only removed"
        elif policy == "recreate" and self._recreates(gone):
            reason += f"; created again from {self.spec.source.entity} {link.source_id}"
        elif policy == "recreate" and gone == "target":
            reason += (f"; not created again (deletes.policy recreate makes a new {self.spec.target.entity} for a "
                       f"deleted one, and this dataflow's create is {self.spec.create!r})")
        return [Action("unlink", self.name, link.source_id, link.target_id, side=other, link=link, reason=reason)]

    def _guarded_deletes(self) -> Iterator[Action]:
        deletes = self.scan.deletes
        if not deletes:
            return
        guard = self._guard
        assert guard is not None, "actions() reads the guard first"
        removed = guard.earlier + len(deletes)
        if removed > guard.allowed:
            self.scan.guard_tripped = True
            yield Action("guard", self.name, reason=self._guard_message(guard, len(deletes)))
            return
        yield from deletes
        yield from self._recreated(deletes)

    def _recreates(self, gone: str) -> bool:
        return self.spec.delete_policy == "recreate" and gone == "target" and self.spec.create in {"target", "both"}

    def _recreated(self, deletes: list[Action]) -> Iterator[Action]:
        """Policy recreate: each deleted target record made again from its source record, in the run the
        deletion is seen, after the unlink (and through the usual crash-safe create)."""
        for unlink in deletes:
            if unlink.kind != "unlink" or unlink.side != "source" or not self._recreates("target"):
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
        if self.spec.delete_policy != "unlink" or not self._has_retired:
            return []
        return [e for e in self.store.iter_retired(self.name) if e.retired_at < stamp and self._kept_apart(e)]

    # -- records that come back -------------------------------------------------------------------------

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
        if partner is not None and self.rules.refusal(target_id, partner):
            partner = None  # no longer this dataflow's record (or linked in another dataflow): never taken
        if partner is None:
            if not self._kept_apart(entry):
                self._gone(entry)
            return None
        return self._relink(entry, record, modified, values, partner)

    def _kept_apart(self, entry: RetiredLink) -> bool:
        """Policy unlink: a source record whose target was deleted gets no new partner, on no later run."""
        return self.spec.delete_policy == "unlink" and entry.gone == "target"

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
        return self._relink_read_source(entry, source, record)

    def _relink_read_source(self, entry: RetiredLink, source: dict[str, Any], target_record: dict[str, Any]
                            ) -> Action:
        target_id = entry.target_id
        try:
            values = self.mapper.project_source(source, self.links)
        except UnresolvedReference as exc:
            return Action("defer", self.name, entry.source_id, target_id, label=self._label(source),
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
        action = self._pair_action(link, result, source_record=source_record, source_values=source_values,
                                   target_record=target_record, target_values=target_values,
                                   source_modified=source_modified)
        action.kind = "relink"
        return action

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

    # -- one record at a time (plan --id, apply --id, apply --plan) -------------------------------------

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
            back[record_id] = target
            return
        yield Action("missing", self.name, reason=f"{record_id}: not found on either side (neither a "
                     f"{self.spec.source.label} nor a {self.spec.target.label} of this dataflow)")

    def _plan_linked_by_id(self, link: Link) -> Iterator[Action]:
        """Both records of a pair read now: merged three-way, or the delete policy when one is gone."""
        source = self.source.read(self.spec.source.entity, link.source_id)
        target = self.target.read(self.spec.target.entity, link.target_id)
        if target is None or source is None:
            for action in self._deletion(link, gone="target" if target is None else "source"):
                # What was read of the side that is left: a saved plan compares its change marker.
                action.source_record, action.target_record = source, target
                action.source_modified = modified_of(self.spec.source_schema, source)
                self.scan.deletes.append(action)
            return
        target_modified = modified_of(self.spec.target_schema, target) or ""
        self.scan.target_changed[link.target_id] = TargetSeen(target, target_modified)
        yield from self._plan_source_record(source, modified_of(self.spec.source_schema, source) or "", link)

    def _list_unlinked_targets(self) -> None:
        for chunk in chunked(self.target.list_changes(self.spec.target.entity, None), CHUNK):
            linked = {link.target_id for link in self.store.get_links(self.name, target_ids=[c.id for c in chunk])}
            for change in chunk:
                if change.record is not None and not change.deleted and change.id not in linked \
                        and self.mapper.owns_target(change.record):
                    self.scan.unlinked_targets[change.id] = change.record

    # -- what the other system would refuse, and what the plan would leave linked ----------------------

    def _refused(self, action: Action) -> Action | None:
        """A write whose body the receiving system would refuse (its entity schema says so), as a failed
        record; or the record waiting, when a value flowing back names a record not linked yet. None: the
        write goes ahead. Plan and apply both pass here, so they fail the same records alike."""
        if not action.writes or action.kind == "delete":
            return None
        try:
            problem = self._write_problem(action)
        except UnresolvedReference as exc:
            return Action("defer", self.name, action.source_id, action.target_id, side=action.side, label=action.label,
                          reason=f"waits for {exc.dataflow} {exc.record_id} to be linked ({exc.prop})")
        except MappingError as exc:
            problem = f"cannot map it back: {exc}"
        if problem is None:
            return None
        # Nothing of it is written (no change carried): it goes to the ledger and is read again next run.
        return Action("fail", self.name, action.source_id, action.target_id, side=action.side, label=action.label,
                      reason=problem)

    def _write_problem(self, action: Action) -> str | None:
        """Checks the bodies the executor will send (built by the same mapper functions)."""
        mapper = self.mapper
        if action.kind == "create" and action.side == "target":
            return mapper.target_check.create_problem(mapper.create_body(action.source_values))
        if action.kind == "create":
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
        if action.kind == "create":
            overlay.would_make(self.name, source_id or f"(new: {target_id})", target_id or f"(new: {source_id})")
        elif action.kind in {"link", "relink"}:
            overlay.would_make(self.name, source_id, target_id)
        elif action.kind in {"unlink", "delete"}:
            overlay.would_remove(self.name, source_id, target_id)

    # -- helpers ----------------------------------------------------------------------------------------

    def _source_id(self, record: dict[str, Any]) -> str:
        key = str(self.spec.source_schema.get("x-key", "id"))
        return str(record.get(key))

    def _label(self, record: dict[str, Any]) -> str:
        first = self.spec.rows[0].source_path
        return str(get_path(record, split(first)) or "") if first else ""

    def _fail(self, source_id: str | None, target_id: str | None, reason: str, status: int | None,
              label: str = "") -> Action:
        return Action("fail", self.name, source_id, target_id, label=label, reason=reason, status=status)
