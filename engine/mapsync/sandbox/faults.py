"""Injectable faults for the emulators: rate limits, outages, dropped connections, slow answers, and
hostile answers (a body trickled a byte at a time, a gzip bomb, JSON nested too deeply, a redirect).

A fault is drawn once per HTTP request (on a socket or through `transport()`; never for direct calls such
as `edit()`), from one random number compared against the cumulative rates, so the rates are shares of all
requests and the draw is reproducible when `Faults.seed` is set. `paths` narrows the faults to some paths
(e.g. one entity's listing), so that one dataflow of a run can fail while the others go on.
"""

from __future__ import annotations

import enum
import functools
import random
import zlib
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
    rate_trickle: float = 0.0  # the answer's body is sent a byte at a time
    trickle_seconds: float = 2.0  # the pause before each byte of a trickled body
    rate_gzip_bomb: float = 0.0  # a small gzip answer that inflates to gzip_bomb_bytes
    gzip_bomb_bytes: int = 300 * 1024 * 1024
    rate_deep_json: float = 0.0  # a 200 whose JSON body nests deep_json_depth arrays
    deep_json_depth: int = 100_000
    rate_redirect: float = 0.0  # a 302 to redirect_to (another host; its query may hold a "secret")
    redirect_to: str = "http://elsewhere.invalid/login?session=sandbox-session-secret"
    paths: tuple[str, ...] = ()  # only requests whose path starts with one of these draw faults; () = all

    def __post_init__(self) -> None:
        for name, rate in self._rates():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1, got {rate}")
        if sum(rate for _, rate in self._rates()) > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        if self.slow_seconds < 0 or self.latency < 0 or self.retry_after < 0 or self.trickle_seconds < 0:
            raise ValueError("slow_seconds, trickle_seconds, latency and retry_after must not be negative")
        if self.gzip_bomb_bytes < 0 or self.deep_json_depth < 1:
            raise ValueError("gzip_bomb_bytes must not be negative, and deep_json_depth must be at least 1")

    def _rates(self) -> tuple[tuple[str, float], ...]:
        return (
            ("rate_429", self.rate_429),
            ("rate_503", self.rate_503),
            ("rate_drop", self.rate_drop),
            ("rate_drop_after_write", self.rate_drop_after_write),
            ("rate_slow", self.rate_slow),
            ("rate_trickle", self.rate_trickle),
            ("rate_gzip_bomb", self.rate_gzip_bomb),
            ("rate_deep_json", self.rate_deep_json),
            ("rate_redirect", self.rate_redirect),
        )

    @property
    def any_rate(self) -> bool:
        """True when some request may be faulted (latency alone is not a fault)."""
        return any(rate > 0 for _, rate in self._rates())

    def applies_to(self, path: str) -> bool:
        """Whether a request to `path` may be faulted."""
        return not self.paths or path.startswith(self.paths)

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
    TRICKLE = "trickle"
    GZIP_BOMB = "gzip_bomb"
    DEEP_JSON = "deep_json"
    REDIRECT = "redirect"


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
        (Fault.TRICKLE, faults.rate_trickle),
        (Fault.GZIP_BOMB, faults.rate_gzip_bomb),
        (Fault.DEEP_JSON, faults.rate_deep_json),
        (Fault.REDIRECT, faults.rate_redirect),
    ):
        if roll < rate:
            return fault
        roll -= rate
    return Fault.NONE


def gzip_bomb(size: int) -> bytes:
    """`size` bytes of JSON whitespace around `{}`, gzipped: about a thousandth of that on the wire."""
    return _gzip_bomb(size)


@functools.lru_cache(maxsize=2)
def _gzip_bomb(size: int) -> bytes:
    # Compressed a megabyte at a time: the bomb is never whole in memory here either.
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b" " * (1024 * 1024)
    parts = []
    remaining = max(0, size - 2)
    while remaining > 0:
        parts.append(compressor.compress(block[:remaining]))
        remaining -= len(block)
    parts.append(compressor.compress(b"{}"))
    parts.append(compressor.flush())
    return b"".join(parts)


def deep_json(depth: int) -> bytes:
    """Arrays nested `depth` deep: valid JSON that a recursive parser cannot read."""
    return b"[" * depth + b"]" * depth


__all__ = ["Fault", "Faults", "deep_json", "draw_fault", "gzip_bomb"]
