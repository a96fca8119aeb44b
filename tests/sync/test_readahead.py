"""A listing read ahead in its own thread: same chunks in the same order, errors where they happened,
bounded memory, and a thread that ends when the reader is done."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sync_harness import Harness
from waiting import wait_until

from mapsync.connectors.base import Change, ChangeListing
from mapsync.sandbox import Faults
from mapsync.sync._readahead import AHEAD, ReadAhead


def changes(count: int, produced: list[int] | None = None, fail_at: int | None = None) -> Iterator[Change]:
    for number in range(count):
        if number == fail_at:
            raise RuntimeError(f"page broke at {number}")
        if produced is not None:
            produced.append(number)
        yield Change(id=str(number), modified=f"2024-01-01T00:00:{number % 60:02d}.000Z", record={"n": number})


def test_chunks_come_in_order_and_the_listing_says_where_to_resume() -> None:
    def produce(listing: ChangeListing) -> Iterator[Change]:
        yield from changes(25)
        listing.resume = "2024-01-01T00:01:00.000Z"

    reader = ReadAhead(ChangeListing(produce), "test", size=10)
    chunks = list(reader.chunks())
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    assert [c.id for chunk in chunks for c in chunk] == [str(n) for n in range(25)]
    assert getattr(reader.listing, "resume", None) == "2024-01-01T00:01:00.000Z"


def test_an_error_reaches_the_reader_after_the_chunks_before_it() -> None:
    reader = ReadAhead(changes(25, fail_at=22), "test", size=10)
    got: list[int] = []
    with pytest.raises(RuntimeError, match="page broke at 22"):
        for chunk in reader.chunks():
            got.append(len(chunk))
    assert got == [10, 10]


def test_it_reads_no_more_than_a_few_chunks_ahead() -> None:
    produced: list[int] = []
    reader = ReadAhead(changes(1000, produced), "test", size=10)
    wait_until(lambda: len(produced) >= (AHEAD + 1) * 10, 5, "the thread to fill its queue")
    time.sleep(0.2)  # time to overrun, were it unbounded
    assert len(produced) <= (AHEAD + 1) * 10  # the queue's chunks and the one being filled
    reader.close()


def test_closing_ends_the_thread_and_reading_stops() -> None:
    produced: list[int] = []
    reader = ReadAhead(changes(1000, produced), "test", size=10)
    first = next(reader.chunks())
    assert len(first) == 10
    reader.close()
    assert not any(t.name == "mapsync-list-test" and t.is_alive() for t in threading.enumerate())
    assert len(produced) < 1000


def test_a_dataflow_that_stops_leaves_no_listing_thread_behind(make_harness: Callable[..., Harness],
                                                                sqlite_url: str) -> None:
    """The target listing fails (an answer nested too deeply) while the source listing is read ahead: the
    dataflow stops, and the source listing's thread has ended by the time the run returns."""
    h = make_harness(sqlite_url)
    h.sb.custompms.faults = Faults(rate_deep_json=1.0, deep_json_depth=200, paths=("/api/v1/customers",))
    run = h.apply()
    assert run.exit_code != 0
    assert "nested too deeply" in run.output
    assert not [t.name for t in threading.enumerate() if t.name.startswith("mapsync-list-") and t.is_alive()]


def test_closing_does_not_wait_long_for_a_request_that_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    from mapsync.sync import _readahead

    monkeypatch.setattr(_readahead, "JOIN_GRACE", 0.2)
    release = threading.Event()

    def hanging() -> Iterator[Change]:
        yield from changes(10)
        release.wait(10)  # the next page's request, on a network that does not answer
        yield from changes(5)

    reader = ReadAhead(hanging(), "hang", size=10)
    assert len(next(reader.chunks())) == 10
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 5
    release.set()
