"""The executor: performs actions through the connectors with bounded concurrency, and records each
outcome in the state store on the calling thread (the store is never touched from a worker).

Every write is fenced by the run lock (`fence`, the lock's check): before a batch's pending creates are
stored and its requests sent, and inside the transaction that records outcomes. A run that lost its
lock stops there (LockLostError), and what was queued but not started is never sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mapsync.connectors.base import Connector
from mapsync.connectors.http import RunDeadline, RunDeadlineError
from mapsync.errors import ConnectorError, MappingError, MapsyncError, StateError
from mapsync.mapping.mapper import UnresolvedReference
from mapsync.state.base import Conflict, DeadLetter, HistoryEntry, Link, PendingCreate, RetiredLink, Token
from mapsync.sync._execute_update import Updates
from mapsync.sync._pool import RequestPool
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.context import DataflowContext, UsesContext
from mapsync.sync.create_ids import CreateIds, pending_record_id
from mapsync.sync.history import outcome_entries
from mapsync.sync.scan import chunked, modified_of

NEEDS_REQUEST = frozenset({ActionKind.CREATE, ActionKind.UPDATE, ActionKind.LINK, ActionKind.RELINK,
                           ActionKind.DELETE})
PAIRED = frozenset({ActionKind.UPDATE, ActionKind.LINK, ActionKind.RELINK, ActionKind.REFRESH, ActionKind.CONFLICT})


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Outcome:
    """What became of a planned action; the action itself is never changed."""

    action: Action
    source_result: dict[str, Any] | None = None
    target_result: dict[str, Any] | None = None
    error: MapsyncError | None = None
    new_conflicts: int | None = None  # of the action's conflicts, those not already waiting (None: all)
    settled_as: ActionKind | None = None  # fail or defer, when the request went wrong
    failure: str = ""  # why, then
    created: Link | None = None  # the link a create made: the ids the record has from now on

    @property
    def kind(self) -> ActionKind:
        return self.settled_as or self.action.kind

    @property
    def reason(self) -> str:
        return self.failure or self.action.reason

    @property
    def source_id(self) -> str | None:
        return self.created.source_id if self.created else self.action.source_id


@dataclass
class Prepared:
    """What the main thread works out before a request goes to a worker (it may need the store)."""

    action: Action
    idempotency_key: str = ""
    target_body: dict[str, Any] | None = None
    source_body: dict[str, Any] | None = None


class Executor(UsesContext):
    def __init__(self, ctx: DataflowContext, *, workers: int, on_outcome: Callable[[Outcome], None],
                 fence: Callable[[], None], deadline: RunDeadline | None = None, run_id: str = "") -> None:
        self.ctx = ctx
        self.run_id = run_id  # names the run in the history of every write
        self._history: list[HistoryEntry] = []  # recorded with the group's other writes
        self.fence = fence  # raises LockLostError once the run's lock is no longer its own
        self.workers = max(1, workers)
        self.on_outcome = on_outcome
        self.deadline = deadline
        self._out_of_time = False  # the run's deadline passed: no new batch starts
        self._done: list[Outcome] = []  # finished, not yet recorded
        self._pool: RequestPool  # set by run()
        # Written in one batch per group of outcomes (see _record_done):
        self._new_pendings: list[PendingCreate] = []
        self._links_made: list[Link] = []
        self._pendings_done: dict[str, list[str]] = {"target": [], "source": []}
        self._new_pairs: list[Link] = []  # links made in this run: retired entries naming their ids go
        self._retired_exist: bool | None = None
        self.create_ids = CreateIds(ctx.spec, ctx.store)  # keys of creates; ids refused as taken
        self._fresh_ids: list[Action] = []  # creates whose id another record holds: tried with a new one
        self.updates = Updates(ctx)  # with the tokens the links remember, reading only when needed

    # -- the loop -----------------------------------------------------------------------------------

    def run(self, actions: Iterable[Action]) -> None:
        with RequestPool(self.workers, name=f"mapsync-{self.spec.name}") as self._pool:
            inflight: set[Future[Outcome]] = set()
            try:
                self._submit(actions, inflight)
            except MapsyncError as exc:
                if not isinstance(exc, StateError):
                    # The listing broke part way (a hostile answer, max_pages, --max-duration): the writes
                    # already sent finish and are recorded, so the next run need not work them out again.
                    self._finish_inflight(inflight)
                raise
            self._finish_inflight(inflight)
        if self._out_of_time and self.deadline is not None:
            raise self.deadline.error()  # the dataflow stops unfinished: its cursors stay where they were

    def _submit(self, actions: Iterable[Action], inflight: set[Future[Outcome]]) -> None:
        for batch in self._batches(actions, inflight):
            if self._deadline_passed():
                return  # what is in flight still finishes, and is recorded
            for item in self._prepare_batch(batch):
                if isinstance(item, Outcome):
                    self._done.append(item)
                    continue
                while len(inflight) >= self.workers * 2:
                    self._collect(inflight, block=True)
                inflight.add(self._pool.start(self._perform, item))
            self._collect(inflight, block=False)

    def _batches(self, actions: Iterable[Action], inflight: set[Future[Outcome]]) -> Iterable[list[Action]]:
        """The planned actions in batches, each followed by the creates that must try a new id."""
        for batch in chunked(actions, self.workers * 4):
            yield from (batch, *self._take_fresh_ids())
        while self.create_ids.entries and inflight:  # the last creates' ids may be refused too
            self._collect(inflight, block=True)
            yield from self._take_fresh_ids()

    def _take_fresh_ids(self) -> list[list[Action]]:
        taken, self._fresh_ids = self._fresh_ids, []
        return [taken] if taken else []

    def _finish_inflight(self, inflight: set[Future[Outcome]]) -> None:
        while inflight:
            self._collect(inflight, block=True)
        self._record_done()

    def _deadline_passed(self) -> bool:
        if self.deadline is not None and self.deadline.expired():
            self._out_of_time = True
        return self._out_of_time

    def _collect(self, inflight: set[Future[Outcome]], *, block: bool) -> None:
        done = self._pool.finished(block=block)
        inflight.difference_update(done)
        for outcome in (future.result() for future in done):
            if self.create_ids.try_again(outcome.action, outcome.error):
                self._fresh_ids.append(outcome.action)
            else:
                self._done.append(outcome)
        if len(self._done) >= self.workers * 4:
            self._record_done()

    def _record_done(self) -> None:
        # Outcomes are recorded in groups, one transaction each: a commit per record would cost more than
        # the request on a networked database. Safe, because every create's pending entry (and so its
        # idempotency key) was committed before its request went out.
        if not self._done:
            return
        # A group of records found unchanged writes nothing: no transaction, no fence (a no-change run).
        writes = any(outcome.error is not None or outcome.action.kind != ActionKind.UNCHANGED or outcome.action.queued
                     or (outcome.action.note and not outcome.action.noted) for outcome in self._done)
        with self.store.transaction() if writes else nullcontext():
            if writes:
                self.fence()  # in the transaction: a run taking the lock over waits for it, or it is refused
            for outcome in self._done:
                self._finish(outcome)
            self.store.put_links(self._links_made)
            self.store.add_history(self._history)
            for side in ("target", "source"):
                self.store.remove_pendings(self.spec.name, side, self._pendings_done[side])
            self._drop_retired_of_new_pairs()
        self._done.clear()
        self._links_made.clear()
        self._history.clear()
        self._pendings_done = {"target": [], "source": []}

    # -- before the request: pending creates, bodies ------------------------------------------------

    def _prepare_batch(self, batch: list[Action]) -> list[Prepared | Outcome]:
        # Pending creates are committed before any of their requests is sent: that is what makes a
        # crash or a timeout harmless (the rerun sends the same idempotency key / Id again).
        out: list[Prepared | Outcome] = []
        # A create_id {counter} is taken in the transaction that records the pending create naming it.
        with self.store.transaction() if self.create_ids.used_by(batch) else nullcontext():
            for action in batch:
                if action.kind not in NEEDS_REQUEST and not action.writes:
                    out.append(Outcome(action))
                    continue
                try:
                    out.append(self._prepare(action))
                except MapsyncError as exc:
                    out.append(Outcome(action, error=exc))
            if any(isinstance(item, Prepared) for item in out):  # requests follow: fenced, with their pendings
                with self.store.transaction():
                    self.fence()
                    self.store.add_pendings(self._new_pendings)
        self._new_pendings.clear()
        return out

    def _prepare(self, action: Action) -> Prepared:
        prepared = Prepared(action)
        if action.kind == ActionKind.CREATE:
            side = action.side
            if side == "target":
                body = prepared.target_body = (action.body if action.body is not None
                                               else self.mapper.create_body(action.source_values))
            else:
                body = prepared.source_body = self.mapper.create_back_body(action.target_record or {}, self.links)
            prepared.idempotency_key = action.idempotency_key or self._new_pending(action, body)
            if side == "source":
                body[str(self.spec.source_schema.get("x-key", "id"))] = prepared.idempotency_key
        elif action.source_changes:
            prepared.source_body = self.mapper.source_changes(action.target_record or {},
                                                              set(action.source_changes), self.links)
        return prepared

    def _new_pending(self, action: Action, body: dict[str, Any]) -> str:
        side, record_id = action.side, pending_record_id(action)
        pending = PendingCreate(self.spec.name, side, record_id, self.create_ids.new_key(side, record_id, body), now())
        self._new_pendings.append(pending)  # committed with the rest of the batch, before any request
        return pending.idempotency_key

    # -- the request (worker thread) ----------------------------------------------------------------

    def _perform(self, prepared: Prepared) -> Outcome:
        action = prepared.action
        outcome = Outcome(action)
        try:
            if action.kind == ActionKind.CREATE and action.side == "target":
                outcome.target_result = self._created(self.target, self.spec.target.entity, self.spec.target_schema,
                                                      prepared)
            elif action.kind == ActionKind.CREATE:
                outcome.source_result = self._created(self.source, self.spec.source.entity, self.spec.source_schema,
                                                      prepared)
            elif action.kind == ActionKind.DELETE:
                self._delete(action)
            else:
                if action.target_changes:
                    outcome.target_result = self.updates.update_target(action)
                if prepared.source_body:
                    outcome.source_result = self.updates.update_source(action, prepared.source_body)
        except MapsyncError as exc:
            outcome.error = exc
        return outcome

    def _created(self, connector: Connector, entity: str, schema: dict[str, Any], prepared: Prepared
                 ) -> dict[str, Any]:
        body = prepared.target_body if connector is self.target else prepared.source_body
        record = connector.create(entity, body or {}, idempotency_key=prepared.idempotency_key)
        key = str(schema.get("x-key", "id"))
        if not isinstance(record.get(key), str) or not record[key]:
            # Without the id there is nothing to link: fail the record (the pending create stays, so the
            # retry finds the same record through its idempotency key) rather than store a broken link.
            raise ConnectorError(f"the answer to creating a {entity} holds no {key!r}", connection=connector.name,
                                 method="POST")
        return record

    def _delete(self, action: Action) -> None:
        if action.side == "target":
            self.target.delete(self.spec.target.entity, action.target_id or "")
        else:
            self.source.delete(self.spec.source.entity, action.source_id or "")

    # -- after the request (main thread) ------------------------------------------------------------

    def _finish(self, outcome: Outcome) -> None:
        action = outcome.action
        if isinstance(outcome.error, RunDeadlineError):
            self._out_of_time = True  # dead-lettered below, so the next run retries it
        if outcome.error is not None:
            self._dead_letter(outcome, outcome.error)
            if self.create_ids.gave_up(action, outcome.error):  # every id it tried was refused: none names a record
                self._pendings_done[action.side].append(pending_record_id(action))
        elif action.kind == ActionKind.CREATE:
            self._record_create(outcome)
        elif action.kind in PAIRED:
            self._record_pair(outcome)
        elif action.kind in {ActionKind.DELETE, ActionKind.UNLINK}:
            if action.link is not None:  # kept, so the record is relinked if it was only missing from a listing
                self.store.retire_link(RetiredLink.of(action.link, gone="source" if action.side == "target"
                                                      else "target"))
            self.store.delete_link(self.spec.name, action.source_id or "")
            self.store.remove_conflicts(self.spec.name, action.source_id or "")
            if action.target_id:
                self.links.forget(self.spec.name, action.source_id or "", action.target_id)
        elif action.kind in {ActionKind.DEFER, ActionKind.FAIL, ActionKind.AMBIGUOUS}:
            self._dead_letter(outcome, None)
        elif action.kind == ActionKind.DROP:
            self.store.remove_dead_letter(self.spec.name, "target", action.source_id or "")
            self.store.remove_pending(self.spec.name, "target", action.source_id or "")
        elif action.kind == ActionKind.UNCHANGED and action.queued and not action.note:
            self.store.remove_dead_letter(self.spec.name, "target", action.source_id or "")  # in sync: it leaves
        if outcome.error is None and action.note and not action.noted:
            self._write_note(outcome.source_id or "", action.note)
        self._history.extend(outcome_entries(outcome, self.spec, self.run_id))
        self.on_outcome(outcome)

    def _write_note(self, source_id: str, note: str) -> None:
        """The ledger says why a record synced as it did (a reference's record gone), once: a note, not a
        failed attempt, so it replaces what the ledger held for the record and the run's status stays ok."""
        stamp = now()
        self.store.remove_dead_letter(self.spec.name, "target", source_id)
        self.store.add_dead_letter(DeadLetter(self.spec.name, "target", source_id, note, None,
                                              first_failed_at=stamp, last_failed_at=stamp))

    def _record_create(self, outcome: Outcome) -> None:
        action = outcome.action
        ledger_side, ledger_id = _ledger_key(action)  # the planned ids, as the ledger knows the record
        if action.side == "target":
            result = outcome.target_result or {}
            target_id = str(result.get(str(self.spec.target_schema.get("x-key", "id"))))
            link = Link(self.spec.name, action.source_id or "", target_id, source_values=action.source_values,
                        target_values=self._project_target(result, action.source_values),
                        source_version=action.source_modified, target_version=modified_of(self.spec.target_schema,
                                                                                           result),
                        updated_at=now(), source_token=self.updates.token("source", action.source_record),
                        target_token=self.updates.token("target", result))
            pending_id = action.source_id or ""
        else:
            result = outcome.source_result or {}
            source_id = str(result.get(str(self.spec.source_schema.get("x-key", "id"))))
            link = Link(self.spec.name, source_id, action.target_id or "",
                        source_values=self._project_source(result, action.target_values),
                        target_values=action.target_values, source_version=modified_of(self.spec.source_schema, result),
                        target_version=modified_of(self.spec.target_schema, action.target_record), updated_at=now(),
                        source_token=self.updates.token("source", result),
                        target_token=self.updates.token("target", action.target_record))
            pending_id = action.target_id or ""
        outcome.created = link
        self._links_made.append(link)
        self._new_pairs.append(link)
        self.links.learn(self.spec.name, link.source_id, link.target_id)
        self._pendings_done[action.side].append(pending_id)
        if action.queued and not action.note:
            self.store.remove_dead_letter(self.spec.name, ledger_side, ledger_id)

    def _record_pair(self, outcome: Outcome) -> None:
        action = outcome.action
        old = action.link
        assert old is not None, "a pair action always carries its link"
        source_values = (self._project_source(outcome.source_result, action.source_values)
                         if outcome.source_result else dict(action.source_values))
        target_values = (self._project_target(outcome.target_result, action.target_values)
                         if outcome.target_result else dict(action.target_values))
        manual = [c for c in action.conflicts if c.resolution == "manual"]
        if manual and old.source_values:
            # Both sides keep their value and the link keeps the old base, so the conflict stays visible
            # (and is never silently settled) until a person resolves it.
            for conflict in manual:
                source_values[conflict.prop] = old.source_values.get(conflict.prop)
                target_values[conflict.prop] = old.target_values.get(conflict.prop)
        link = Link(self.spec.name, old.source_id, old.target_id, source_values=source_values,
                    target_values=target_values,
                    source_version=modified_of(self.spec.source_schema, outcome.source_result)
                    or action.source_modified or old.source_version,
                    target_version=modified_of(self.spec.target_schema, outcome.target_result)
                    or modified_of(self.spec.target_schema, action.target_record) or old.target_version,
                    state="conflict" if manual else "ok", updated_at=now(),
                    source_token=self._token("source", outcome.source_result, action.source_record, old.source_token),
                    target_token=self._token("target", outcome.target_result, action.target_record, old.target_token))
        self._links_made.append(link)
        if action.kind in {ActionKind.LINK, ActionKind.RELINK}:
            self._new_pairs.append(link)
            self.links.learn(self.spec.name, link.source_id, link.target_id)
        # A conflict still waiting as it was keeps its detection time, and is not counted again.
        waiting = {c.prop: c for c in self.store.conflicts_of(self.spec.name, link.source_id)} \
            if old.state == "conflict" and manual else {}
        if old.state == "conflict" or manual:
            self.store.remove_conflicts(self.spec.name, link.source_id)
        already_waiting = 0
        for conflict in manual:
            before = waiting.get(conflict.prop)
            detected_at = now()
            if before is not None and (before.source_value, before.target_value, before.target_id) \
                    == (conflict.source_value, conflict.target_value, link.target_id):
                already_waiting += 1
                detected_at = before.detected_at
            self.store.add_conflict(Conflict(self.spec.name, link.source_id, link.target_id, conflict.prop,
                                             conflict.base, conflict.source_value, conflict.target_value,
                                             detected_at))
        outcome.new_conflicts = len(action.conflicts) - already_waiting
        if action.queued and not action.note:  # a note stays: see _write_note
            self.store.remove_dead_letter(self.spec.name, "target", link.source_id)

    def _token(self, side: str, written: dict[str, Any] | None, listed: dict[str, Any] | None, old: Token) -> Token:
        """The side's concurrency token from now on: as written, else as listed, else as remembered."""
        if written:
            return self.updates.token(side, written)
        return self.updates.token(side, listed) if listed else old

    def _drop_retired_of_new_pairs(self) -> None:
        # A retired entry must never relink onto a record now linked to another one.
        if self._new_pairs and self._retired_exist is None:
            self._retired_exist = self.store.count_retired(self.spec.name) > 0
        if self._new_pairs and self._retired_exist:
            self.store.drop_retired(self.spec.name, source_ids=[link.source_id for link in self._new_pairs],
                                    target_ids=[link.target_id for link in self._new_pairs])
        self._new_pairs.clear()

    def _project_source(self, record: dict[str, Any] | None, fallback: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.mapper.project_source(record or {}, self.links)
        except MappingError:
            return dict(fallback)

    def _project_target(self, record: dict[str, Any] | None, fallback: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.mapper.project_target(record or {})
        except MappingError:
            return dict(fallback)

    def _dead_letter(self, outcome: Outcome, error: MapsyncError | None) -> None:
        action = outcome.action
        side, record_id = _ledger_key(action)
        reason = action.reason if error is None else str(error)
        status = error.status if isinstance(error, ConnectorError) else action.status
        if isinstance(error, UnresolvedReference):
            outcome.settled_as = ActionKind.DEFER
        elif error is not None:
            outcome.settled_as = ActionKind.FAIL
        outcome.failure = reason
        stamp = now()
        self.store.add_dead_letter(DeadLetter(self.spec.name, side, record_id, reason, status,
                                              first_failed_at=stamp, last_failed_at=stamp))


def _ledger_key(action: Action) -> tuple[str, str]:
    """Where a failed record is kept: by its source id, but a failed create in the source (a target record
    with no source partner yet) by its target id, on the source side: that is what the retry reads."""
    if action.side == "source" and not action.source_id:  # a create back, or one refused or waiting
        return "source", action.target_id or ""
    return "target", action.source_id or action.target_id or ""

