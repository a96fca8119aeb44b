"""Injectable faults for the emulators: rate limits, outages, dropped connections, slow answers.

A fault is drawn once per HTTP request (never for direct, in-process calls), from one random number
compared against the cumulative rates, so the rates are shares of all requests and the draw is
reproducible when `Faults.seed` is set.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


@dataclass
class Faults:
    """How often each fault happens (shares between 0 and 1 of all requests) and how it behaves."""

    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    rate_drop_after_write: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    retry_after: int = 1
    latency: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name, rate in self._rates():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1, got {rate}")
        if sum(rate for _, rate in self._rates()) > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        if self.slow_seconds < 0 or self.latency < 0 or self.retry_after < 0:
            raise ValueError("slow_seconds, latency and retry_after must not be negative")

    def _rates(self) -> tuple[tuple[str, float], ...]:
        return (
            ("rate_429", self.rate_429),
            ("rate_503", self.rate_503),
            ("rate_drop", self.rate_drop),
            ("rate_drop_after_write", self.rate_drop_after_write),
            ("rate_slow", self.rate_slow),
        )

    @property
    def any_rate(self) -> bool:
        """True when some request may be faulted (latency alone is not a fault)."""
        return any(rate > 0 for _, rate in self._rates())

    def new_rng(self) -> random.Random:
        """A fresh generator: seeded for reproducible fault sequences, else from the OS."""
        return random.Random(self.seed)


class Fault(enum.Enum):
    """What happens to one request."""

    NONE = "none"
    RATE_LIMIT = "429"
    UNAVAILABLE = "503"
    DROP = "drop"
    DROP_AFTER_WRITE = "drop_after_write"
    SLOW = "slow"


def draw_fault(faults: Faults, rng: random.Random) -> Fault:
    """One draw per request; skips the generator entirely when no fault can happen."""
    if not faults.any_rate:
        return Fault.NONE
    roll = rng.random()
    for fault, rate in (
        (Fault.RATE_LIMIT, faults.rate_429),
        (Fault.UNAVAILABLE, faults.rate_503),
        (Fault.DROP, faults.rate_drop),
        (Fault.DROP_AFTER_WRITE, faults.rate_drop_after_write),
        (Fault.SLOW, faults.rate_slow),
    ):
        if roll < rate:
            return fault
        roll -= rate
    return Fault.NONE


__all__ = ["Fault", "Faults", "draw_fault"]
