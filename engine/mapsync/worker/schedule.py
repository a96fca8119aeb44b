"""When each dataflow runs next: its interval, the full-scan cron expression, triggers, and the backoff of a
dataflow that keeps failing.

Due times are on the monotonic clock (a wall-clock jump neither skips nor repeats runs); the full scan's
cron expression is read in wall-clock local time, as cron does. Not thread-safe: the Worker guards it.

Several workers share one schedule through the state store (a `ScheduleEntry` per dataflow: its last run,
its failures in a row, its last full scan). The local timers say when to look; `shared_due` says, from the
entry, whether the dataflow is really due, and `adopt` takes the entry's backoff and full scan over, so a
run another worker made is not repeated and a restarted worker keeps the backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

from mapsync.spec.run_settings import SettingError, check_cron, parse_duration, parse_listen
from mapsync.state.base import ScheduleEntry

MAX_BACKOFF = 3600.0  # a failing dataflow is retried at least hourly (or at its own interval, if longer)

__all__ = ["MAX_BACKOFF", "Schedule", "SettingError", "backoff_delay", "intervals", "next_full_scan", "parse_duration",
           "parse_listen", "parse_stamp", "shared_due"]


def backoff_delay(every: float, failures: int, cap: float = MAX_BACKOFF) -> float:
    """Seconds until the next try after `failures` failed runs in a row: `every`, then doubling, capped
    at `cap` (or at `every` when that is longer). No failure: just `every`."""
    if failures <= 1:
        return every
    return min(every * 2.0 ** min(failures - 1, 60), max(cap, every))


def next_full_scan(expression: str, after: datetime) -> datetime:
    """The first time the cron expression names after `after` (an aware datetime, local time)."""
    return croniter(check_cron(expression), after).get_next(datetime)


def parse_stamp(text: str) -> datetime | None:
    """A store timestamp (UTC ISO 8601) as an aware datetime; None when empty or unreadable."""
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def shared_due(entry: ScheduleEntry | None, every: float) -> datetime | None:
    """When the dataflow is due by its shared entry (None: no run recorded, so due now). After a run that
    went through (or that an `apply` holding the lock made unnecessary): the interval after it ended; after
    a failure: the backoff; after a stopped run: at once (it was cut short); after a run that never ended
    (its worker died): the interval after it began."""
    if entry is None:
        return None
    started, finished = parse_stamp(entry.started_at), parse_stamp(entry.finished_at)
    if finished is None:
        return None if started is None else started + timedelta(seconds=every)
    if entry.status == "stopped":
        return finished
    delay = backoff_delay(every, entry.failures) if entry.status == "failed" else every
    return finished + timedelta(seconds=delay)


@dataclass
class _Timer:
    every: float
    due: float  # monotonic seconds
    failures: int = 0
    full_due_at: datetime | None = None  # the next full scan's wall-clock time (None: no full scans)
    triggered: bool = False


class Schedule:
    """The due time of every dataflow, in dependency order. Every dataflow is due at once when it starts."""

    def __init__(self, every: Mapping[str, float], *, full_scan: str | None = None, now: float,
                 wall: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:
        self._wall = wall
        self._full_scan = full_scan
        first_full = next_full_scan(full_scan, wall()) if full_scan else None
        self._timers = {name: _Timer(seconds, now, full_due_at=first_full) for name, seconds in every.items()}

    @property
    def names(self) -> list[str]:
        return list(self._timers)

    def due(self, now: float) -> list[str]:
        """The dataflows due at `now`, in dependency order."""
        return [name for name, timer in self._timers.items() if timer.due <= now]

    def seconds_until_due(self, now: float) -> float:
        """How long nothing is due (0 when something is)."""
        return max(0.0, min((timer.due for timer in self._timers.values()), default=now + 3600.0) - now)

    def full_scan_due(self, name: str) -> bool:
        """Whether the next run of `name` rescans everything: its full-scan time has come."""
        at = self._timers[name].full_due_at
        return at is not None and at <= self._wall()

    def interval(self, name: str) -> float:
        return self._timers[name].every

    def failures(self, name: str) -> int:
        return self._timers[name].failures

    def trigger(self, name: str, now: float) -> None:
        """Due now (a POST /trigger): ahead of its interval and of any backoff."""
        timer = self._timers[name]
        timer.due = min(timer.due, now)
        timer.triggered = True

    def was_triggered(self, name: str) -> bool:
        return self._timers[name].triggered

    def ran(self, name: str, now: float, *, full: bool) -> float:
        """A run went through (records it failed are retried by the next one): due again after the
        interval, the backoff reset. Returns the delay."""
        timer = self._timers[name]
        timer.failures = 0
        if full:
            self._full_scan_done(timer)
        return self._due_in(timer, now, timer.every)

    def taken_elsewhere(self, name: str, now: float, *, full: bool) -> float:
        """Another worker holds the dataflow's lock, so it is syncing it: this worker's turn comes after
        the interval (the failures count is that worker's business, not this one's)."""
        timer = self._timers[name]
        if full:
            self._full_scan_done(timer)  # the other worker reads the same cron expression
        return self._due_in(timer, now, timer.every)

    def failed(self, name: str, now: float) -> float:
        """A run failed as a whole (a connection down, the lock lost): backed off; a due full scan stays due."""
        timer = self._timers[name]
        timer.failures += 1
        return self._due_in(timer, now, backoff_delay(timer.every, timer.failures))

    def adopt(self, name: str, entry: ScheduleEntry | None) -> None:
        """Take the shared entry's failures in a row and last full scan over (another worker's, or this
        one's before a restart): the backoff and the next full scan follow the dataflow, not the worker."""
        if entry is None:
            return
        timer = self._timers[name]
        timer.failures = entry.failures
        last_full = parse_stamp(entry.full_scan_at)
        if self._full_scan is not None and last_full is not None:
            # the cron expression is read in this worker's local time, as for its own full scans
            timer.full_due_at = next_full_scan(self._full_scan, last_full.astimezone(self._wall().tzinfo))

    def not_due(self, name: str, now: float, wait: float) -> float:
        """The shared schedule says the dataflow is due in `wait` seconds (another worker ran it, or it is
        backing off): look again then."""
        return self._due_in(self._timers[name], now, max(0.0, wait))

    def _due_in(self, timer: _Timer, now: float, delay: float) -> float:
        timer.triggered = False
        timer.due = now + delay
        return delay

    def _full_scan_done(self, timer: _Timer) -> None:
        if self._full_scan is not None:
            timer.full_due_at = next_full_scan(self._full_scan, self._wall())


def intervals(names: Iterable[str], default: float, overrides: Mapping[str, float],
              flag: float | None = None) -> dict[str, float]:
    """Each dataflow's interval: `--every` over everything, else its own `run.dataflows` entry, else `every`."""
    return {name: flag if flag is not None else overrides.get(name, default) for name in names}
