"""`mapsync apply --max-duration SECONDS` bounds a run as a whole, end to end against slowed emulators."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from e2e_expect import assert_in_sync, assert_no_duplicates
from sync_harness import FLOWS, Harness, all_links, write_requests

from mapsync.sandbox import Faults

REASON = "the run reached --max-duration 0.5s"


@pytest.fixture
def hs(make_harness: Callable[..., Harness], sqlite_url: str) -> Harness:
    """The deadline cuts requests in flight on real connections: the emulators on sockets."""
    return make_harness(sqlite_url, socket=True)


def test_max_duration_stops_the_run_and_the_next_run_converges(hs: Harness) -> None:
    hs.converge()
    links_before = all_links(hs)
    cursors_before = {(flow, side): hs.store().get_cursor(flow, side)
                      for flow in FLOWS for side in ("source", "target")}
    kunde = hs.sb.tidsbanken.records("Kunde")[0]
    hs.sb.tidsbanken.edit("Kunde", kunde["Id"], Navn="Tidsfrist AS")
    # Small pages and 0.2 s per request: the first dataflow's full scan alone takes more than 0.5 s, so the
    # deadline trips in the middle of a listing, and the last dataflow cannot have started by then.
    hs.set_connection("tidsbanken", page_size=2)
    hs.sb.set_faults(Faults(latency=0.2))
    writes_before = write_requests(hs)

    run = hs.apply("--full", "--max-duration", "0.5")

    assert run.exit_code == 1, run.output
    assert "Traceback" not in run.output
    assert run.report is not None and run.report["status"] != "ok"
    flows = run.report["dataflows"]
    stopped = [name for name, flow in flows.items() if any(f"{name}: stopped: {REASON}" == e for e in flow["errors"])]
    not_run = [name for name, flow in flows.items() if any(f"{name}: not run: {REASON}" == e for e in flow["errors"])]
    assert len(stopped) == 1, flows
    assert "prosjekt-project" in not_run
    for name in stopped + not_run:
        assert flows[name]["status"] == "failed"
        assert f"error: {name}" in run.stderr
    # Nothing half-read is trusted: no cursor moved, no link went, nothing was deleted.
    for name in stopped + not_run:
        assert {side: hs.store().get_cursor(name, side) for side in ("source", "target")} == \
            {side: cursors_before[(name, side)] for side in ("source", "target")}
    assert all_links(hs) == links_before
    assert not any(method == "DELETE" for (_, method, _), n in (write_requests(hs) - writes_before).items() if n)

    # The next run starts cleanly and converges, with no duplicate.
    hs.sb.set_faults(Faults())
    hs.converge(attempts=2)
    assert_no_duplicates(hs.sb)
    assert_in_sync(hs.sb, all_links(hs))
    assert any(c["name"] == "Tidsfrist AS" for c in hs.sb.custompms.records("customers"))


def test_max_duration_reached_while_creating_makes_no_duplicate(hs: Harness) -> None:
    # 0.3 s per Custompms request: the first two dataflows need at least 1.5 s, so a 1 s run stops while it
    # creates records; creates cut short (in flight, or not sent) are finished by the next run, once each.
    hs.sb.custompms.faults = Faults(latency=0.3)
    run = hs.apply("--max-duration", "1")
    assert run.exit_code == 1, run.output
    assert run.report is not None
    flows = run.report["dataflows"]
    assert any(e.endswith("stopped: the run reached --max-duration 1s") for f in flows.values() for e in f["errors"])
    assert flows["prosjekt-project"]["status"] == "failed"
    hs.sb.custompms.faults = Faults()
    hs.converge(attempts=2)
    tb, pms = hs.sb.tidsbanken, hs.sb.custompms
    # Counted on the server: a create whose answer the deadline cut off is found again by its key, not repeated.
    assert len(pms.records("customers")) == len(tb.records("Avdeling")) + len(tb.records("Kunde"))
    assert len(pms.records("projects")) == len(tb.records("Prosjekt"))
    assert_no_duplicates(hs.sb)
    assert_in_sync(hs.sb, all_links(hs))
    assert list(hs.store().iter_pending()) == []


def test_a_run_within_its_max_duration_is_not_stopped(hs: Harness) -> None:
    run = hs.apply("--max-duration", "600")
    assert run.exit_code == 0, run.output
    assert "max-duration" not in run.output


def test_max_duration_must_be_positive(hs: Harness) -> None:
    run = hs.cli("apply", "--max-duration", "0")
    assert run.exit_code == 2
    assert "--max-duration" in run.output
