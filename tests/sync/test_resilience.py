"""Crashes, kills and flaky servers: every run converges, nothing is lost, nothing is duplicated. Over real
sockets: what is dropped here is a connection."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
from e2e_expect import assert_in_sync, assert_no_duplicates
from sync_harness import Harness

from mapsync.sandbox import Faults, SeedSize

FLOWS = ("avdeling-customer", "kunde-customer", "prosjekt-project")
KILL_SEED = SeedSize(avdelinger=2, kunder=8, prosjekter=10)
# The initial sync of KILL_SEED takes 26 requests (6 listings, 20 creates): kill at 20 points across it.
KILL_POINTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24)


def all_links(h: Harness) -> dict[str, dict[str, str]]:
    return {flow: h.links(flow) for flow in FLOWS}


def assert_converged(h: Harness) -> None:
    assert_no_duplicates(h.sb)
    assert_in_sync(h.sb, all_links(h))
    assert list(h.store().iter_pending()) == []
    assert list(h.store().iter_dead_letters()) == []
    settled = h.writes()
    run = h.apply("--full")
    assert run.exit_code == 0, run.output
    assert h.writes() == settled, "a converged state still writes"


def test_creates_survive_connections_dropped_after_the_write(make_harness: Callable[..., Harness],
                                                              sqlite_url: str) -> None:
    h = make_harness(sqlite_url, socket=True)
    # Custompms stores the record, then drops the connection before answering.
    h.sb.custompms.faults = Faults(rate_drop_after_write=0.3, retry_after=0, seed=11)
    runs = h.converge(attempts=5)
    dropped_posts = h.sb.custompms.requests[("POST", "/api/v1/customers")] \
        + h.sb.custompms.requests[("POST", "/api/v1/projects")] - 48
    assert dropped_posts > 0, "the fault never hit a create: the test proves nothing"
    h.sb.custompms.faults = Faults()
    assert_converged(h)
    assert sum(r.counts()["created"] for r in runs) == 48


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_killed_apply_then_rerun(make_harness: Callable[..., Harness], sqlite_url: str, kill_at: int) -> None:
    h = make_harness(sqlite_url, socket=True, seed=KILL_SEED, faults=Faults(latency=0.01))
    proc = h.spawn_apply()
    try:
        deadline = time.monotonic() + 60
        while h.sb.tidsbanken.request_count + h.sb.custompms.request_count < kill_at:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the apply subprocess made no progress"
            time.sleep(0.001)
        assert proc.poll() is None, "the apply finished before the kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    h.sb.set_faults(Faults())
    h.converge(attempts=3)
    assert_converged(h)


def test_flaky_servers_converge(make_harness: Callable[..., Harness], sqlite_url: str) -> None:
    h = make_harness(sqlite_url, socket=True, faults=Faults(rate_429=0.04, rate_503=0.03, rate_drop=0.03, retry_after=0,
                                               seed=7))
    h.converge(attempts=4)
    # both ways, still flaky: edits on each side arrive
    kunde = h.sb.tidsbanken.records("Kunde")[0]
    other = h.sb.tidsbanken.records("Kunde")[1]
    h.sb.tidsbanken.edit("Kunde", kunde["Id"], Navn="Ustabil Forbindelse AS")
    h.sb.custompms.edit("customers", h.links("kunde-customer")[other["Id"]], email="flaky@example.no")
    h.converge(attempts=4)
    h.sb.set_faults(Faults())
    tb_other = h.sb.tidsbanken.get("Kunde", other["Id"])
    assert tb_other is not None and tb_other["Epost"] == "flaky@example.no"
    assert_converged(h)
