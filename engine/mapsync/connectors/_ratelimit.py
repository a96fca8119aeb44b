"""A thread-safe token bucket: the client-side rate limit shared by every thread of one connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Hands out `rate` tokens per second, at most `burst` at once.

    A caller reserves its token under the lock and sleeps outside it, so waiting threads queue up in
    order without holding the lock while they sleep.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the time waited."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            # The balance may go negative: that is the queue of callers already promised a token.
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Unlimited:
    """Stands in for a TokenBucket when no rate limit is configured."""

    def acquire(self) -> float:
        return 0.0


__all__ = ["TokenBucket", "Unlimited"]
