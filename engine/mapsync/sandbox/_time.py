"""Timestamps of the emulators: exact integer microseconds, and the clock that stamps writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, unlike float timestamps)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def format_utc_millis(micros: int) -> str:
    """2024-05-01T10:00:00.123Z"""
    return from_micros(micros).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_aware_datetime(text: str) -> datetime | None:
    """An ISO 8601 datetime that carries a zone (Z or an offset), else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class WriteClock:
    """Hands out write timestamps (microseconds, truncated to whole milliseconds).

    By default real time, but strictly increasing by at least 1 ms per write so that two writes never
    share a timestamp by accident. Tests set `clock` to force equal (or chosen) timestamps; a set
    clock is used as it is.
    """

    def __init__(self) -> None:
        self.clock: Callable[[], datetime] | None = None
        self._last = 0
        self._lock = threading.Lock()

    def observe(self, micros: int) -> None:
        """Make later real-time stamps come after an existing (e.g. seeded) one."""
        with self._lock:
            self._last = max(self._last, micros)

    def now(self) -> datetime:
        """The clock's present moment (UTC): the set clock's, else real time."""
        moment = self.clock() if self.clock is not None else datetime.now(UTC)
        return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def next(self) -> int:
        with self._lock:
            if self.clock is not None:
                stamp = to_micros(self.clock()) // 1000 * 1000
            else:
                stamp = max(to_micros(datetime.now(UTC)) // 1000 * 1000, self._last + 1000)
            self._last = max(self._last, stamp)
            return stamp


__all__ = ["EPOCH", "WriteClock", "format_utc_millis", "from_micros", "parse_aware_datetime", "to_micros"]
