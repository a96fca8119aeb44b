"""One sync run over a workspace: connectors and the state store opened once, dataflows in dependency
order, each planned and (for apply) executed, cursors saved only when a dataflow was read completely."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, assert_never

from mapsync.connectors import create_connector
from mapsync.connectors._common import HttpBackedConnector
from mapsync.connectors.base import Connector
from mapsync.connectors.http import RunDeadline, RunDeadlineError
from mapsync.errors import LockHeldError, LockLostError, MapsyncError, PlanError
from mapsync.mapping.mapper import Mapper
from mapsync.observe import logs
from mapsync.spec.model import DataflowSpec, Workspace
from mapsync.state import open_store
from mapsync.state.base import RunLock, StateStore
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.context import DataflowContext
from mapsync.sync.executor import Executor, Outcome
from mapsync.sync.history import prune_history
from mapsync.sync.link_rules import LinkRules, rivals_of
from mapsync.sync.lookup import PlannedLinks, StoreLinks
from mapsync.sync.planner import DataflowPlanner
from mapsync.sync.report import Counts, Report

ProgressHook = Callable[[str, Action], None]
# Kinds reported as a failed record, each with its own error line.
FAILED_KINDS = frozenset({ActionKind.FAIL, ActionKind.AMBIGUOUS, ActionKind.GUARD, ActionKind.MISSING})


class ActionScreen(Protocol):
    """What `apply --plan` puts between the planner and the executor (see sync/saved_plan.py)."""

    def check(self, store: StateStore) -> None:
        """Before anything is read or written, under the run's locks: refuse the run by raising."""

    def screen(self, spec: DataflowSpec, actions: Iterator[Action]) -> Iterator[Action]:
        """The actions to perform: planned ones let through, the others turned into `stale` ones."""


def count(counts: Counts, kind: ActionKind, conflicts: int) -> None:
    """The one place an action is counted for the report: a finished one (apply: `kind` is its outcome's)
    or a planned one (plan). `conflicts`: of its conflicts, those not already waiting (a manual conflict is
    counted once, when first detected)."""
    counts.conflicts += conflicts
    match kind:
        case ActionKind.CREATE:
            counts.created += 1
        case ActionKind.UPDATE:
            counts.updated += 1
        case ActionKind.LINK | ActionKind.RELINK:
            counts.linked += 1
        case ActionKind.DELETE:
            counts.deleted += 1
        case ActionKind.UNLINK:
            counts.unlinked += 1
        case ActionKind.DEFER:
            counts.deferred += 1
        case ActionKind.FAIL | ActionKind.AMBIGUOUS | ActionKind.GUARD | ActionKind.MISSING:
            counts.failed += 1
        case ActionKind.STALE:
            counts.stale += 1
        case ActionKind.UNCHANGED | ActionKind.REFRESH | ActionKind.CONFLICT:
            counts.unchanged += 1
        case ActionKind.DROP:
            pass  # gone from the source since it failed: no record left to count
        case _:
            assert_never(kind)


@dataclass
class PlannedDataflow:
    spec: DataflowSpec
    counts: Counts = field(default_factory=Counts)
    error: str = ""


class SyncRun:
    """Opens what a run needs; use as a context manager."""

    def __init__(self, workspace: Workspace, *, dataflows: list[str] | None = None, full: bool = False,
                 store: StateStore | None = None, connectors: dict[str, Connector] | None = None,
                 max_delete_share: float | None = None, only_ids: dict[str, list[str]] | None = None,
                 screen: ActionScreen | None = None) -> None:
        unknown = sorted(set(dataflows or []) - set(workspace.dataflows))
        if unknown:
            raise PlanError(f"unknown dataflow {', '.join(unknown)} (known: {', '.join(workspace.dataflows)})")
        self.workspace = workspace
        self.specs = workspace.ordered(dataflows)
        self.full = full
        self.max_delete_share = max_delete_share  # overrides every dataflow's deletes.max_share
        self._stack = ExitStack()
        self._store = store
        self.connectors: dict[str, Connector] = dict(connectors or {})
        self.mappers = {spec.name: Mapper(spec) for spec in self.specs}
        self.deadline: RunDeadline | None = None  # apply's --max-duration
        self.only_ids = only_ids  # --id / a saved plan: per dataflow, just these records (no cursor moves)
        self.screen = screen  # a saved plan: performs its own actions only
        self._stop_requested = False  # request_stop(): the worker is shutting down

    def __enter__(self) -> SyncRun:
        if self._store is None:
            self._store = open_store(self.workspace.state_url)
            self._stack.callback(self._store.close)
        for spec in self.specs:
            for side in (spec.source, spec.target):
                if side.connection not in self.connectors:
                    connector = create_connector(side.connection, self.workspace.connections[side.connection])
                    self.connectors[side.connection] = connector
                    self._stack.callback(connector.close)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def store(self) -> StateStore:
        assert self._store is not None, "use SyncRun as a context manager"
        return self._store

    def _context(self, spec: DataflowSpec, links: StoreLinks) -> DataflowContext:
        return DataflowContext(spec, self.mappers[spec.name], self.connectors[spec.source.connection],
                               self.connectors[spec.target.connection], self.store, links)

    def _planner(self, spec: DataflowSpec, links: StoreLinks, *, plan_only: bool) -> DataflowPlanner:
        return DataflowPlanner(self._context(spec, links), full=self.full, plan_only=plan_only,
                               max_delete_share=self.max_delete_share,
                               only_ids=None if self.only_ids is None else self.only_ids.get(spec.name, []),
                               rivals=rivals_of(self.workspace.dataflows.values(), spec))

    def link_rules(self, name: str) -> LinkRules:
        """What may be linked in dataflow `name`, read through this run's connectors and store."""
        spec = self.workspace.dataflows[name]
        return LinkRules(self._context(spec, StoreLinks(self.store)),
                         rivals_of(self.workspace.dataflows.values(), spec))

    # -- plan -----------------------------------------------------------------------------------------

    def plan(self, on_action: Callable[[DataflowSpec, Action], None] | None = None) -> Iterator[PlannedDataflow]:
        """Every dataflow's counts, reading both systems and changing nothing.

        Each action that would change something goes to `on_action` as it is planned (streamed: an
        initial sync's plan is long, and nothing of it is kept here); a dataflow is yielded when done.
        """
        links = PlannedLinks(self.store)  # the links as this plan's earlier actions would leave them
        for spec in self.specs:
            planned = PlannedDataflow(spec)
            try:
                for action in self._planner(spec, links, plan_only=True).actions():
                    count(planned.counts, action.kind, len(action.conflicts))
                    if on_action is not None and action.kind not in {ActionKind.UNCHANGED, ActionKind.REFRESH}:
                        on_action(spec, action)
            except MapsyncError as exc:
                planned.error = str(exc)
            yield planned

    # -- apply ----------------------------------------------------------------------------------------

    def apply(self, *, lock_wait: float = 0.0, progress: ProgressHook | None = None,
              max_duration: float | None = None) -> Report:
        report = Report(max_delete_share=self.max_delete_share)
        with logs.run_logged(report, [spec.name for spec in self.specs]):  # run.start, run.end; run_id bound
            return self._apply_all(report, lock_wait, progress, max_duration)

    def _apply_all(self, report: Report, lock_wait: float, progress: ProgressHook | None,
                   max_duration: float | None) -> Report:
        self._set_deadline(_StoppableDeadline(max_duration))
        if self._stop_requested:
            self.request_stop()
        try:
            with self._dataflow_locks(lock_wait) as locks:
                links = StoreLinks(self.store)
                if self.screen is not None:
                    self.screen.check(self.store)
                for spec in self.specs:
                    if self.deadline is not None and self.deadline.expired():
                        _not_run(report, spec, self.deadline)
                        continue
                    with logs.dataflow_logged(report, spec.name):  # the dataflow's run.start, run.end
                        started = time.monotonic()
                        try:
                            self._apply_dataflow(spec, links, report, progress, locks[spec.name])
                        finally:
                            report.dataflow(spec.name).duration = time.monotonic() - started
                        report.dataflow(spec.name).note_waiting(self.store.iter_conflicts(spec.name))
                        prune_history(self.store, spec.name, self.workspace.history_keep_days, locks[spec.name])
        except LockHeldError as exc:
            # Reported like any failure, so the JSON report a scheduler watches says why nothing ran.
            report.errors.append(f"{exc} (use --wait SECONDS to wait for it)")
            report.lock_held = True  # a worker reads this as "taken elsewhere", not as a failure
        except LockLostError as exc:
            # Another run may be writing now: this one stops at once, no later dataflow either.
            report.errors.append(str(exc))
        report.requests = {name: c.request_counts() for name, c in self.connectors.items()}
        report.request_statuses = {name: c.request_status_counts() for name, c in self.connectors.items()
                                   if isinstance(c, HttpBackedConnector)}
        report.finished_at = datetime.now(UTC)
        return report

    def request_stop(self) -> None:
        """Stop at the next batch boundary (safe from a signal handler or another thread): the writes in
        flight finish and are recorded, no new batch starts, no later dataflow starts, the locks are released
        as apply returns. What was cut short reports `stopped: the run was asked to stop`, as --max-duration."""
        self._stop_requested = True
        if isinstance(self.deadline, _StoppableDeadline):
            self.deadline.stop()

    def _set_deadline(self, deadline: RunDeadline | None) -> None:
        """The run's deadline, also passed down to every request as a cap on its own deadline."""
        self.deadline = deadline
        for connector in self.connectors.values():
            if isinstance(connector, HttpBackedConnector):
                connector.set_run_deadline(deadline)

    @contextmanager
    def _dataflow_locks(self, wait: float) -> Iterator[dict[str, RunLock]]:
        """One lock per dataflow, all taken before anything is read, in name order (so two runs can never
        wait on each other). Runs of disjoint dataflows go side by side; runs sharing one never overlap.
        Each dataflow's writes are fenced by its lock (see RunLock)."""
        with ExitStack() as held:
            yield {name: held.enter_context(self.store.lock(f"apply:{name}", wait=wait))
                   for name in sorted(spec.name for spec in self.specs)}

    def _apply_dataflow(self, spec: DataflowSpec, links: StoreLinks, report: Report,
                        progress: ProgressHook | None, lock: RunLock) -> None:
        result = report.dataflow(spec.name)
        planner = self._planner(spec, links, plan_only=False)

        def on_outcome(outcome: Outcome) -> None:
            conflicts = len(outcome.action.conflicts) if outcome.new_conflicts is None else outcome.new_conflicts
            count(result.counts, outcome.kind, conflicts)
            logs.record_outcome(outcome, failed=outcome.kind in FAILED_KINDS)
            if outcome.kind in FAILED_KINDS | {ActionKind.STALE} and len(result.errors) < 100:
                result.errors.append(_error_line(spec, outcome))
            if progress is not None:
                progress(spec.name, outcome.action)

        workers = max(self._concurrency_of(side.connection) for side in (spec.source, spec.target))
        executor = Executor(planner.ctx, workers=workers, on_outcome=on_outcome, fence=lock.check,
                            deadline=self.deadline, run_id=report.run_id)
        actions = planner.actions()
        try:
            executor.run(actions if self.screen is None else self.screen.screen(spec, actions))
        except LockLostError:
            result.aborted = True
            raise
        except MapsyncError as exc:
            result.aborted = True
            result.errors.append(f"{spec.name}: stopped: {exc}")
            return
        finally:
            actions.close()  # a plan cut short stops reading its listings ahead now, not when collected
        if planner.scan.complete:
            with self.store.transaction():  # the dataflow's last writes, fenced like every other
                lock.check()
                planner.settle()  # retired links and the delete guard's baseline
                if not planner.scan.guard_tripped:
                    self._save_cursors(spec, planner)

    def _concurrency_of(self, connection: str) -> int:
        """Writes in flight: the connection block's `concurrency`, else its connector's (a definition's
        `defaults.concurrency`), else 8."""
        settings = self.workspace.connections[connection]
        if "concurrency" in settings:
            return int(settings["concurrency"])
        own = getattr(self.connectors.get(connection), "concurrency", None)
        return own if isinstance(own, int) and own > 0 else 8

    def _save_cursors(self, spec: DataflowSpec, planner: DataflowPlanner) -> None:
        with self.store.transaction():
            if planner.scan.source_cursor:
                self.store.set_cursor(spec.name, "source", planner.scan.source_cursor)
            if planner.scan.target_cursor:
                self.store.set_cursor(spec.name, "target", planner.scan.target_cursor)


class _StoppableDeadline(RunDeadline):
    """The run's deadline: --max-duration if given (else none), and ended at once by request_stop(). The
    executor and every request already stop at it between batches, so a stop is exactly as safe."""

    def __init__(self, seconds: float | None) -> None:
        super().__init__(math.inf if seconds is None else seconds)
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True

    def remaining(self) -> float:
        return 0.0 if self._stopped else super().remaining()

    def expired(self) -> bool:
        return self._stopped or super().expired()

    def error(self) -> RunDeadlineError:
        return RunDeadlineError("the run was asked to stop") if self._stopped else super().error()


def _not_run(report: Report, spec: DataflowSpec, deadline: RunDeadline) -> None:
    result = report.dataflow(spec.name)
    result.aborted = True  # failed: nothing of it was read, so nothing of it is trusted or saved
    result.errors.append(f"{spec.name}: not run: {deadline.error()}")


def _error_line(spec: DataflowSpec, outcome: Outcome) -> str:
    if not outcome.source_id:
        return f"{spec.name}: {outcome.reason}"
    return f"{spec.name}: {spec.source.entity} {outcome.source_id}: {outcome.reason}"


def summary_rows(report: Report) -> list[dict[str, Any]]:
    rows = [{"dataflow": name, **vars(r.counts), "status": r.status} for name, r in report.dataflows.items()]
    rows.append({"dataflow": "total", **vars(report.total), "status": report.status})
    return rows
