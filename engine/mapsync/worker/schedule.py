"""When each dataflow runs next: its interval, the full-scan cron expression, triggers, and the backoff of a
dataflow that keeps failing.

Due times are on the monotonic clock (a wall-clock jump neither skips nor repeats runs); the full scan's
cron expression is read in wall-clock local time, as cron does. Not thread-safe: the Worker guards it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

from mapsync.spec.run_settings import SettingError, check_cron, parse_duration, parse_listen

MAX_BACKOFF = 3600.0  # a failing dataflow is retried at least hourly (or at its own interval, if longer)

__all__ = ["MAX_BACKOFF", "Schedule", "SettingError", "backoff_delay", "intervals", "next_full_scan", "parse_duration",
           "parse_listen"]


def backoff_delay(every: float, failures: int, cap: float = MAX_BACKOFF) -> float:
    """Seconds until the next try after `failures` failed runs in a row: `every`, then doubling, capped
    at `cap` (or at `every` when that is longer). No failure: just `every`."""
    if failures <= 1:
        return every
    return min(every * 2.0 ** min(failures - 1, 60), max(cap, every))


def next_full_scan(expression: str, after: datetime) -> datetime:
    """The first time the cron expression names after `after` (an aware datetime, local time)."""
    return croniter(check_cron(expression), after).get_next(datetime)


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
