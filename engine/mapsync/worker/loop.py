"""The Worker of `mapsync run`: syncs each dataflow when it is due, one run per dataflow, until stopped.

Several workers on one PostgreSQL state share the work with no configuration, and share the schedule: a
worker whose timer fires takes the dataflow's `schedule:` lock without waiting (held: another worker is at
it, come back after the interval), reads the dataflow's shared entry (state/_schedule.py) and runs it only
if it is due by that entry: nobody ran it within the interval and it is not backing off. It records the
run's start and end in the entry under that lock, so each interval brings one run whatever the number of
workers, and backoff and full scans survive a restart. The run itself is a `SyncRun` taking the
dataflow's `apply:` lock as `apply` does (held by an `apply`: taken elsewhere). A worker that dies frees
its locks with its connections; its entry says when its run began, and the others take the dataflow an
interval after that.

stop() may be called from a signal handler: it only sets flags (no lock, no logging), and the run in
progress stops at its next batch boundary (SyncRun.request_stop), releasing its lock as it returns.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mapsync.errors import LockHeldError, MapsyncError
from mapsync.redact import redact_text
from mapsync.spec.model import Workspace
from mapsync.state import open_store
from mapsync.state.base import RunLock, ScheduleEntry, StateStore
from mapsync.sync.report import SUCCEEDED, Report
from mapsync.sync.runner import SyncRun
from mapsync.worker.schedule import Schedule, intervals, shared_due

LOG = logging.getLogger("mapsync.worker")
# Called after each run that did something, while its store is open (the metrics read the dead letters).
ReportHook = Callable[[Report, StateStore | None], None]
KEPT_RESULTS = 1000  # the latest runs, for tests and the endpoint; older ones are dropped
SCHEDULE_LOCK = "schedule:"  # + the dataflow's name: held while a worker decides on, runs and records it


class RunOutcome(enum.StrEnum):
    OK = "ok"  # everything synced (manual conflicts may wait)
    PARTIAL = "partial"  # went through; some records failed and are retried by the next run
    FAILED = "failed"  # did not go through (a connection or the store down, the lock lost): backed off
    TAKEN = "taken-elsewhere"  # another worker (or an apply) holds the dataflow's lock: it is syncing it
    STOPPED = "stopped"  # cut short by stop()
    NOT_DUE = "not-due"  # the shared schedule: another worker ran it within the interval, or it backs off


@dataclass(frozen=True)
class RunResult:
    dataflow: str
    outcome: RunOutcome
    full: bool
    started: float  # monotonic clock
    finished: float
    report: Report
    next_in: float | None = None  # seconds until the dataflow is due again (None: --once, or stopping)


class Worker:
    def __init__(self, workspace: Workspace, *, every: float | None = None, on_report: ReportHook | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        settings = workspace.run
        self.workspace = workspace
        self.on_report = on_report
        self._clock = clock
        self.schedule = Schedule(intervals(workspace.dataflows, settings.every, settings.dataflows, every),
                                 full_scan=settings.full_scan, now=clock())
        self.results: deque[RunResult] = deque(maxlen=KEPT_RESULTS)
        self._lock = threading.Lock()  # the schedule, against trigger() from the endpoint's threads
        self._wake = threading.Event()  # set by trigger() and stop(): the sleep ends early
        self._stopping = threading.Event()
        self._current: SyncRun | None = None

    # -- from other threads and signal handlers -----------------------------------------------------------

    def stop(self) -> None:
        """Finish the run in progress at its next batch boundary, start no other, and leave the loop."""
        self._stopping.set()
        self._wake.set()
        current = self._current
        if current is not None:
            current.request_stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def trigger(self, name: str) -> str | None:
        """Make `name` due now: None, or why not (unknown dataflow, the worker is stopping)."""
        if name not in self.workspace.dataflows:
            return f"unknown dataflow {name!r} (known: {', '.join(self.workspace.dataflows)})"
        if self.stopping:
            return "the worker is stopping"
        with self._lock:
            self.schedule.trigger(name, self._clock())
        self._wake.set()
        _log(logging.INFO, "worker.trigger", dataflow=name)
        return None

    # -- the loop -----------------------------------------------------------------------------------------

    def run_forever(self) -> None:
        """Sync each dataflow whenever it is due, in dependency order, until stop()."""
        _log(logging.INFO, "worker.start", every={n: self.schedule.interval(n) for n in self.schedule.names},
             full_scan=self.workspace.run.full_scan)
        while not self.stopping:
            self._wake.clear()
            with self._lock:
                due = self.schedule.due(self._clock())
            for name in due:
                if self.stopping:
                    break
                with self._lock:
                    forced = self.schedule.was_triggered(name)  # a trigger runs it, due or not
                self.run_dataflow(name, when_due=not forced)
            with self._lock:
                pause = self.schedule.seconds_until_due(self._clock())
            if pause > 0 and not self.stopping:
                self._wake.wait(pause)
        _log(logging.INFO, "worker.stop")

    def run_once(self) -> list[RunResult]:
        """Each dataflow once, in dependency order (`mapsync run --once`), unless stopped on the way."""
        done: list[RunResult] = []
        for name in self.workspace.dataflows:
            if self.stopping:
                break
            done.append(self.run_dataflow(name, once=True))
        return done

    def run_dataflow(self, name: str, *, once: bool = False, when_due: bool = False) -> RunResult:
        """One run of `name` now (with `when_due`: only if the shared schedule says it is due, else
        NOT_DUE); its next due time set from how it went."""
        started = self._clock()
        attempt = self._attempt(name, when_due)
        finished = self._clock()
        next_in = None if once or self.stopping else self._reschedule(name, attempt, finished)
        result = RunResult(name, attempt.outcome, attempt.full, started, finished, attempt.report, next_in)
        self.results.append(result)
        _log_result(result, self.schedule.failures(name))
        return result

    def _attempt(self, name: str, when_due: bool) -> _Attempt:
        with self._lock:
            full = self.schedule.full_scan_due(name)
        try:
            store = open_store(self.workspace.state_url)
        except MapsyncError as exc:  # the store cannot be opened: the dataflow failed (backed off here)
            return _Attempt(RunOutcome.FAILED, full, _failed_report(name, exc))
        try:
            return self._attempt_scheduled(store, name, when_due, full)
        finally:
            store.close()

    def _attempt_scheduled(self, store: StateStore, name: str, when_due: bool, full: bool) -> _Attempt:
        """Under the dataflow's schedule lock: read its shared entry, and run it if due (or forced)."""
        try:
            with store.lock(f"{SCHEDULE_LOCK}{name}") as lock:
                entry = store.get_schedule(name)
                with self._lock:
                    self.schedule.adopt(name, entry)
                    full = self.schedule.full_scan_due(name)
                wait = _seconds_until(shared_due(entry, self.schedule.interval(name)))
                if when_due and wait > 0:
                    return _Attempt(RunOutcome.NOT_DUE, False, Report(), wait)
                return self._run_recorded(store, lock, entry or ScheduleEntry(name), full)
        except LockHeldError as exc:  # another worker holds it: it is running the dataflow now
            report = Report(lock_held=True)
            report.errors.append(str(exc))
            return _Attempt(RunOutcome.TAKEN, full, report)
        except MapsyncError as exc:  # the store failed reading the schedule: the dataflow failed
            return _Attempt(RunOutcome.FAILED, full, _failed_report(name, exc))

    def _run_recorded(self, store: StateStore, lock: RunLock, entry: ScheduleEntry, full: bool) -> _Attempt:
        """Run the dataflow, its start and its end recorded in the shared entry."""
        name, begun = entry.dataflow, _now_iso()
        self._record(store, lock, replace(entry, started_at=begun, status="running", finished_at="",
                                          worker=_worker_id()))
        report = self._sync(name, full, store)
        outcome = self._outcome(report)
        failures = self.schedule.failures(name)  # the entry's, adopted
        if outcome is RunOutcome.FAILED:
            failures += 1
        elif outcome in {RunOutcome.OK, RunOutcome.PARTIAL}:
            failures = 0
        went_through = outcome in {RunOutcome.OK, RunOutcome.PARTIAL}
        self._record(store, lock, replace(entry, started_at=begun, status=str(outcome), finished_at=_now_iso(),
                                          failures=failures, worker=_worker_id(),
                                          full_scan_at=begun if full and went_through else entry.full_scan_at))
        if self.on_report is not None and outcome is not RunOutcome.TAKEN:
            self.on_report(report, store)
        return _Attempt(outcome, full, report)

    def _record(self, store: StateStore, lock: RunLock, entry: ScheduleEntry) -> None:
        """Write the shared entry, fenced by the schedule lock. When that fails the run stands (the others
        find the entry of its start, or none, and run the dataflow an interval after it)."""
        try:
            with store.transaction():
                lock.check()
                store.put_schedule(entry)
        except MapsyncError as exc:
            _log(logging.WARNING, "worker.schedule_unrecorded", dataflow=entry.dataflow, status=entry.status,
                 error=redact_text(str(exc)))

    def _sync(self, name: str, full: bool, store: StateStore) -> Report:
        """The run's report (a failure to open a connection is one too)."""
        run = SyncRun(self.workspace, dataflows=[name], full=full, store=store)
        try:
            with run:
                self._current = run
                if self.stopping:  # stop() came between the loop's check and here
                    run.request_stop()
                try:
                    return run.apply(lock_wait=0)
                finally:
                    self._current = None
        except MapsyncError as exc:  # a connection could not be opened: the dataflow failed
            return _failed_report(name, exc)

    def _outcome(self, report: Report) -> RunOutcome:
        if report.lock_held:
            return RunOutcome.TAKEN
        if report.status in SUCCEEDED:
            return RunOutcome.OK
        if self.stopping:
            return RunOutcome.STOPPED
        went_through = report.dataflows and not report.errors and \
            all(flow.status != "failed" for flow in report.dataflows.values())
        return RunOutcome.PARTIAL if went_through else RunOutcome.FAILED

    def _reschedule(self, name: str, attempt: _Attempt, now: float) -> float:
        with self._lock:
            if attempt.outcome is RunOutcome.NOT_DUE:
                return self.schedule.not_due(name, now, attempt.wait)
            if attempt.outcome is RunOutcome.TAKEN:
                return self.schedule.taken_elsewhere(name, now, full=attempt.full)
            if attempt.outcome is RunOutcome.FAILED:
                return self.schedule.failed(name, now)
            return self.schedule.ran(name, now, full=attempt.full)


@dataclass(frozen=True)
class _Attempt:
    """How trying to run a dataflow went: its outcome and report, and (NOT_DUE) how long until it is due."""

    outcome: RunOutcome
    full: bool
    report: Report
    wait: float = 0.0


def _failed_report(name: str, exc: MapsyncError) -> Report:
    report = Report()
    report.dataflow(name).aborted = True
    report.dataflow(name).errors.append(f"{name}: {exc}")
    report.finished_at = datetime.now(UTC)
    return report


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _seconds_until(due: datetime | None) -> float:
    return 0.0 if due is None else (due - datetime.now(UTC)).total_seconds()


def _worker_id() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def _log_result(result: RunResult, failures: int) -> None:
    fields = {"dataflow": result.dataflow, "outcome": str(result.outcome), "full": result.full,
              "run_id": result.report.run_id, "duration_ms": round((result.finished - result.started) * 1000, 1),
              "next_in_s": None if result.next_in is None else round(result.next_in, 3)}
    if result.outcome is RunOutcome.FAILED:
        errors = [redact_text(e) for e in result.report.errors[:3]] or \
            [redact_text(e) for flow in result.report.dataflows.values() for e in flow.errors[:3]]
        _log(logging.WARNING, "worker.backoff", failures=failures, errors=errors, **fields)
    else:  # a look that found the dataflow not due is routine: debug only
        _log(logging.DEBUG if result.outcome is RunOutcome.NOT_DUE else logging.INFO, "worker.run", **fields)


def _log(level: int, event: str, **fields: object) -> None:
    if LOG.isEnabledFor(level):
        LOG.log(level, event, extra={"event": event, **{k: v for k, v in fields.items() if v is not None}})
