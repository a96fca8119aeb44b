"""The token bucket with a fake clock: spacing, bursts, and thread safety."""

from __future__ import annotations

import threading

import pytest

from mapsync.connectors._ratelimit import TokenBucket, Unlimited


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)


def test_requests_are_spaced_at_the_rate() -> None:
    fake = FakeTime()
    bucket = TokenBucket(4.0, clock=fake.clock, sleep=fake.sleep)
    waits = [bucket.acquire() for _ in range(5)]
    # The first token is there; each later one is promised a quarter second after the previous one.
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    fake = FakeTime()
    bucket = TokenBucket(2.0, burst=3, clock=fake.clock, sleep=fake.sleep)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    fake.now = 100.0  # a long pause refills only up to the burst
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.5)


def test_threads_share_one_budget() -> None:
    fake = FakeTime()
    bucket = TokenBucket(10.0, clock=fake.clock, sleep=fake.sleep)
    threads = [threading.Thread(target=bucket.acquire) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 20 tokens at 10/s from a full bucket of 1: the promised waits are 0.1 .. 1.9, each exactly once.
    assert sorted(round(s, 6) for s in fake.slept) == [round(0.1 * i, 6) for i in range(1, 20)]


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


def test_unlimited_never_waits() -> None:
    assert Unlimited().acquire() == 0.0
