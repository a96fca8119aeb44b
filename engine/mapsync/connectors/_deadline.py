"""The wall-clock deadline of one run (--max-duration), shared by the runner, the executor and the client."""

from __future__ import annotations

import time
from collections.abc import Callable

from mapsync.errors import MapsyncError


class RunDeadlineError(MapsyncError):
    """The run reached its --max-duration: the dataflow being synced stops, the ones after it are not run."""


class RunDeadline:
    """The wall-clock end of one run, shared by the runner, the executor and every request of the run."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self._ends

    def error(self) -> RunDeadlineError:
        return RunDeadlineError(f"the run reached --max-duration {self.seconds:g}s")

    def check(self) -> None:
        if self.expired():
            raise self.error()
