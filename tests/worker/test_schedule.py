"""The worker's schedule: durations, the full-scan cron expression, due times, triggers and backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mapsync.state.base import ScheduleEntry
from mapsync.worker.schedule import (
    MAX_BACKOFF,
    Schedule,
    SettingError,
    backoff_delay,
    intervals,
    next_full_scan,
    parse_duration,
    parse_listen,
    shared_due,
)

FLOWS = ("avdeling-customer", "kunde-customer", "prosjekt-project")  # dependency order
OSLO = timezone(timedelta(hours=1))


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("2d", 172800),
    (" 10 s ", 10),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "why"), [
    ("5", "is not a duration"), ("5x", "is not a duration"), ("", "is not a duration"), ("m5", "is not a duration"),
    ("1h-5m", "is not a duration"), ("0s", "out of range"), ("31d", "out of range"),
])
def test_unusable_durations_say_why(text: str, why: str) -> None:
    with pytest.raises(SettingError, match=why):
        parse_duration(text)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_listen("[::1]:9100") == ("::1", 9100)
    assert parse_listen(":9100") == ("127.0.0.1", 9100)  # loopback unless told otherwise
    for bad in ("9100", "host:", "host:70000", "a b:1"):
        with pytest.raises(SettingError, match="HOST:PORT"):
            parse_listen(bad)


def test_backoff_doubles_from_the_interval_and_is_capped() -> None:
    assert [backoff_delay(60, n) for n in range(6)] == [60, 60, 120, 240, 480, 960]
    assert backoff_delay(60, 50) == MAX_BACKOFF
    assert backoff_delay(7200, 5) == 7200  # never shorter than the dataflow's own interval
    assert backoff_delay(1, 10_000) == MAX_BACKOFF  # no overflow


def test_every_dataflow_is_due_at_start_in_dependency_order() -> None:
    schedule = Schedule(dict.fromkeys(FLOWS, 10.0), now=100.0)
    assert schedule.due(100.0) == list(FLOWS)
    assert schedule.seconds_until_due(100.0) == 0


def test_a_run_makes_the_dataflow_due_after_its_interval() -> None:
    schedule = Schedule({"a": 10.0, "b": 30.0}, now=0.0)
    assert schedule.ran("a", 1.0, full=False) == 10.0
    assert schedule.ran("b", 2.0, full=False) == 30.0
    assert schedule.due(5.0) == []
    assert schedule.seconds_until_due(5.0) == 6.0
    assert schedule.due(11.0) == ["a"]
    assert schedule.due(32.0) == ["a", "b"]


def test_a_failing_dataflow_is_backed_off_and_reset_by_a_run() -> None:
    schedule = Schedule({"a": 10.0}, now=0.0)
    assert [schedule.failed("a", 0.0) for _ in range(4)] == [10.0, 20.0, 40.0, 80.0]
    assert schedule.failures("a") == 4
    assert schedule.due(79.0) == [] and schedule.due(80.0) == ["a"]
    assert schedule.ran("a", 80.0, full=False) == 10.0
    assert schedule.failures("a") == 0
    assert schedule.failed("a", 90.0) == 10.0  # the backoff starts again from the interval


def test_taken_elsewhere_is_not_a_failure() -> None:
    schedule = Schedule({"a": 10.0}, now=0.0)
    schedule.failed("a", 0.0)
    schedule.failed("a", 10.0)
    assert schedule.taken_elsewhere("a", 30.0, full=False) == 10.0
    assert schedule.failures("a") == 2  # neither reset nor raised: the other worker ran it


def test_a_trigger_makes_a_dataflow_due_now_even_when_backed_off() -> None:
    schedule = Schedule({"a": 10.0, "b": 10.0}, now=0.0)
    for _ in range(5):
        schedule.failed("a", 0.0)
    schedule.ran("b", 0.0, full=False)
    schedule.trigger("a", 3.0)
    assert schedule.due(3.0) == ["a"] and schedule.was_triggered("a")
    schedule.ran("a", 3.5, full=False)
    assert not schedule.was_triggered("a")


def test_intervals_flag_over_override_over_default() -> None:
    assert intervals(FLOWS, 300.0, {"kunde-customer": 60.0}) == {
        "avdeling-customer": 300.0, "kunde-customer": 60.0, "prosjekt-project": 300.0}
    assert intervals(FLOWS, 300.0, {"kunde-customer": 60.0}, 1.0) == dict.fromkeys(FLOWS, 1.0)


def test_next_full_scan_reads_the_cron_expression_in_local_time() -> None:
    after = datetime(2025, 3, 4, 1, 0, tzinfo=OSLO)
    assert next_full_scan("30 2 * * *", after) == datetime(2025, 3, 4, 2, 30, tzinfo=OSLO)
    assert next_full_scan("30 2 * * *", datetime(2025, 3, 4, 2, 30, tzinfo=OSLO)) == \
        datetime(2025, 3, 5, 2, 30, tzinfo=OSLO)
    with pytest.raises(SettingError, match="not a cron expression"):
        next_full_scan("every night", after)


def test_the_first_run_after_the_cron_time_is_a_full_scan_until_one_goes_through() -> None:
    clock = {"now": datetime(2025, 3, 4, 1, 0, tzinfo=OSLO)}
    schedule = Schedule({"a": 600.0, "b": 600.0}, full_scan="30 2 * * *", now=0.0, wall=lambda: clock["now"])
    assert not schedule.full_scan_due("a")
    clock["now"] = datetime(2025, 3, 4, 2, 31, tzinfo=OSLO)
    assert schedule.full_scan_due("a") and schedule.full_scan_due("b")
    schedule.failed("a", 0.0)
    assert schedule.full_scan_due("a")  # a failed full scan is tried again
    schedule.ran("a", 0.0, full=True)
    schedule.taken_elsewhere("b", 0.0, full=True)  # the worker holding b rescans it
    assert not schedule.full_scan_due("a") and not schedule.full_scan_due("b")
    clock["now"] = datetime(2025, 3, 5, 2, 30, tzinfo=OSLO)
    assert schedule.full_scan_due("a")


def test_no_full_scan_without_a_cron_expression() -> None:
    schedule = Schedule({"a": 1.0}, now=0.0)
    assert not schedule.full_scan_due("a")


def shared(status: str, *, started: str = "2025-03-04T10:00:00+00:00", finished: str = "2025-03-04T10:00:05+00:00",
           failures: int = 0, full_scan_at: str = "") -> ScheduleEntry:
    return ScheduleEntry("a", started, status, finished, failures, full_scan_at)


def test_the_shared_entry_says_when_the_dataflow_is_due() -> None:
    at = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    assert shared_due(None, 60) is None  # never run: due now
    assert shared_due(shared("ok"), 60) == at + timedelta(seconds=65)  # the interval after it ended
    assert shared_due(shared("partial"), 60) == at + timedelta(seconds=65)
    assert shared_due(shared("taken-elsewhere"), 60) == at + timedelta(seconds=65)
    assert shared_due(shared("failed", failures=3), 60) == at + timedelta(seconds=5 + 240)  # the backoff
    assert shared_due(shared("stopped"), 60) == at + timedelta(seconds=5)  # cut short: due at once
    assert shared_due(shared("running", finished=""), 60) == at + timedelta(seconds=60)  # its worker died


def test_adopting_the_shared_entry_takes_its_backoff_and_last_full_scan_over() -> None:
    clock = {"now": datetime(2025, 3, 4, 3, 0, tzinfo=OSLO)}
    schedule = Schedule({"a": 60.0}, full_scan="30 2 * * *", now=0.0, wall=lambda: clock["now"])
    assert not schedule.full_scan_due("a")  # the first one after this worker started: tomorrow 02:30
    schedule.adopt("a", shared("failed", failures=2, full_scan_at="2025-03-03T01:31:00+00:00"))  # 02:31 Oslo
    assert schedule.failures("a") == 2
    assert schedule.full_scan_due("a")  # none since yesterday's: today's 02:30 has passed
    assert schedule.failed("a", 0.0) == 240.0  # the third failure in a row, whichever worker had the others
    schedule.adopt("a", shared("ok", full_scan_at="2025-03-04T01:35:00+00:00"))
    assert not schedule.full_scan_due("a") and schedule.failures("a") == 0
    schedule.adopt("a", None)  # no entry yet: the worker's own timer stands
    assert not schedule.full_scan_due("a")
    assert schedule.not_due("a", 10.0, 4.5) == 4.5 and schedule.due(14.4) == [] and schedule.due(14.5) == ["a"]
