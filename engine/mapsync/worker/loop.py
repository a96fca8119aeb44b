"""The Worker of `mapsync run`: syncs each dataflow when it is due, one run per dataflow, until stopped.

Each due dataflow is its own `SyncRun` taking that dataflow's lock without waiting, so several workers on
one PostgreSQL state share the work with no configuration: whichever takes the lock syncs the dataflow,
the others find it taken, count that as done and come back after the interval. A worker that dies frees
its locks with its connections, and the others take its dataflows at their next due time.

stop() may be called from a signal handler: it only sets flags (no lock, no logging), and the run in
progress stops at its next batch boundary (SyncRun.request_stop), releasing its lock as it returns.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mapsync.errors import MapsyncError
from mapsync.redact import redact_text
from mapsync.spec.model import Workspace
from mapsync.state.base import StateStore
from mapsync.sync.report import SUCCEEDED, Report
from mapsync.sync.runner import SyncRun
from mapsync.worker.schedule import Schedule, intervals

LOG = logging.getLogger("mapsync.worker")
# Called after each run that did something, while its store is open (the metrics read the dead letters).
ReportHook = Callable[[Report, StateStore | None], None]
KEPT_RESULTS = 1000  # the latest runs, for tests and the endpoint; older ones are dropped


class RunOutcome(enum.StrEnum):
    OK = "ok"  # everything synced (manual conflicts may wait)
    PARTIAL = "partial"  # went through; some records failed and are retried by the next run
    FAILED = "failed"  # did not go through (a connection or the store down, the lock lost): backed off
    TAKEN = "taken-elsewhere"  # another worker (or an apply) holds the dataflow's lock: it is syncing it
    STOPPED = "stopped"  # cut short by stop()


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
                self.run_dataflow(name)
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

    def run_dataflow(self, name: str, *, once: bool = False) -> RunResult:
        """One run of `name` now; its next due time set from how it went."""
        with self._lock:
            full = self.schedule.full_scan_due(name)
        started = self._clock()
        report, store = self._sync(name, full)
        outcome = self._outcome(report)
        if self.on_report is not None and outcome is not RunOutcome.TAKEN:
            self.on_report(report, store)
        finished = self._clock()
        next_in = None if once or self.stopping else self._reschedule(name, outcome, full, finished)
        result = RunResult(name, outcome, full, started, finished, report, next_in)
        self.results.append(result)
        _log_result(result, self.schedule.failures(name))
        return result

    def _sync(self, name: str, full: bool) -> tuple[Report, StateStore | None]:
        """The run's report (a failure to open the store or a connection is one too), and its store."""
        run = SyncRun(self.workspace, dataflows=[name], full=full)
        try:
            with run:
                self._current = run
                if self.stopping:  # stop() came between the loop's check and here
                    run.request_stop()
                try:
                    return run.apply(lock_wait=0), run.store
                finally:
                    self._current = None
        except MapsyncError as exc:  # the store or a connection could not be opened: the dataflow failed
            report = Report()
            report.dataflow(name).aborted = True
            report.dataflow(name).errors.append(f"{name}: {exc}")
            report.finished_at = datetime.now(UTC)
            return report, None

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

    def _reschedule(self, name: str, outcome: RunOutcome, full: bool, now: float) -> float:
        with self._lock:
            if outcome is RunOutcome.TAKEN:
                return self.schedule.taken_elsewhere(name, now, full=full)
            if outcome is RunOutcome.FAILED:
                return self.schedule.failed(name, now)
            return self.schedule.ran(name, now, full=full)


def _log_result(result: RunResult, failures: int) -> None:
    fields = {"dataflow": result.dataflow, "outcome": str(result.outcome), "full": result.full,
              "run_id": result.report.run_id, "duration_ms": round((result.finished - result.started) * 1000, 1),
              "next_in_s": None if result.next_in is None else round(result.next_in, 3)}
    if result.outcome is RunOutcome.FAILED:
        errors = [redact_text(e) for e in result.report.errors[:3]] or \
            [redact_text(e) for flow in result.report.dataflows.values() for e in flow.errors[:3]]
        _log(logging.WARNING, "worker.backoff", failures=failures, errors=errors, **fields)
    else:
        _log(logging.INFO, "worker.run", **fields)


def _log(level: int, event: str, **fields: object) -> None:
    if LOG.isEnabledFor(level):
        LOG.log(level, event, extra={"event": event, **{k: v for k, v in fields.items() if v is not None}})
