"""The run lock end to end: a run that loses its lock mid-run stops before its next write and exits 1,
the run that took the lock over finishes, and nothing is duplicated; on SQLite, a lock row whose holder
is gone (a restarted container, a reused pid) never blocks a run, and a live holder still does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import astuple
from typing import Any

import pytest
from e2e_expect import assert_in_sync, assert_no_duplicates
from sync_harness import FLOWS, Harness, all_links

from mapsync.sandbox import Faults, SeedSize
from mapsync.state import StateStore
from mapsync.state.sqlite import SqliteStore, boot_id, process_start

LOCKS = [f"apply:{flow}" for flow in FLOWS]
LOST = re.compile(r"error: lost the run lock 'apply:[a-z-]+' on \S+: (?P<why>.+): stopped before writing more")
# 123 creates: several batches per dataflow, so a run stopped early has much left to do.
BIG_SEED = SeedSize(avdelinger=3, kunder=40, prosjekter=80)
WORKERS = 8  # the reference workspace's concurrency
# What a run may still send once its lock is gone: the rest of the batch it had fenced, and what was in
# flight (a batch is WORKERS * 4 actions, at most WORKERS * 2 requests in flight).
AFTER_LOSS = WORKERS * 4 + WORKERS * 2


def wait_for_writes(h: Harness, proc: subprocess.Popen[bytes], count: int) -> None:
    deadline = time.monotonic() + 60
    while h.writes() < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the apply subprocess made no progress"
        time.sleep(0.005)
    assert proc.poll() is None, "the apply finished before its lock could be lost"


def stopped(proc: subprocess.Popen[bytes]) -> str:
    """The stderr of a run, once it has stopped by itself."""
    _, err = proc.communicate(timeout=60)
    return err.decode()


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def state_of(store: StateStore) -> tuple[Any, ...]:
    """Everything a run writes to the state."""
    return (sorted(astuple(link) for link in store.iter_links()),
            sorted(astuple(pending) for pending in store.iter_pending()),
            sorted(astuple(letter) for letter in store.iter_dead_letters()),
            sorted((flow, side, store.get_cursor(flow, side)) for flow in FLOWS for side in ("source", "target")))


def assert_converges(h: Harness) -> None:
    h.sb.set_faults(Faults())
    run = h.apply("--full")
    assert run.exit_code == 0, run.output
    assert_no_duplicates(h.sb)
    assert_in_sync(h.sb, all_links(h))
    assert list(h.store().iter_pending()) == []


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_run_whose_postgres_lock_connection_drops_stops_and_the_run_that_takes_over_finishes(
        make_harness: Callable[..., Harness], store_url: str,
        drop_lock_connections: Callable[[str, list[str]], int]) -> None:
    h = make_harness(store_url, socket=True, faults=Faults(latency=0.1))
    first = h.spawn_apply()
    try:
        wait_for_writes(h, first, 3)
        # A network blip, a pooler restart or an administrator: the server ends the lock sessions (of this
        # test's schema alone) and lets their advisory locks go. The first run is not told.
        assert drop_lock_connections(store_url, LOCKS) == len(LOCKS)
        second = h.apply("--wait", "30")
        err = stopped(first)
    finally:
        kill(first)

    assert first.returncode == 1, err
    lost = LOST.search(err)
    assert lost is not None, err
    assert "its connection to the server dropped" in lost["why"] or "another run has taken it" in lost["why"]
    assert "Traceback" not in err
    assert second.exit_code == 0, second.output
    assert_no_duplicates(h.sb)
    assert_converges(h)


def test_a_run_whose_sqlite_lock_is_taken_over_stops_before_its_next_write(
        make_harness: Callable[..., Harness], sqlite_url: str) -> None:
    h = make_harness(sqlite_url, socket=True, seed=BIG_SEED, faults=Faults(latency=0.05))
    creates = BIG_SEED.avdelinger + BIG_SEED.kunder + BIG_SEED.prosjekter
    first = h.spawn_apply()
    try:
        wait_for_writes(h, first, 3)
        with SqliteStore.open(sqlite_url, stale_after=0) as taker, ExitStack() as held:
            # Another process deems the first run's locks stale (as it would a hung run's) and takes them.
            for name in LOCKS:
                held.enter_context(taker.lock(name))
            taken_at, state = h.writes(), state_of(taker)
            err = stopped(first)
            assert state_of(taker) == state, "the first run wrote to the state after losing its lock"
    finally:
        kill(first)

    assert first.returncode == 1, err
    lost = LOST.search(err)
    assert lost is not None, err
    assert lost["why"].startswith(f"it was taken over as stale by pid {os.getpid()} on ")
    after = h.writes() - taken_at
    assert after <= AFTER_LOSS, f"{after} requests sent after the lock was lost"
    assert taken_at + after < creates, "the first run did all its work: the test proves nothing"
    assert_converges(h)


# -- SQLite: who holds a lock row ----------------------------------------------------------------------

pytestmark_proc = pytest.mark.skipif(not process_start(os.getpid()), reason="no /proc to tell process start times")


@pytestmark_proc
@pytest.mark.parametrize("left", [
    pytest.param({"boot": "same", "start": "1"}, id="a previous container: our host and pid, another start"),
    pytest.param({"boot": "another-boot", "start": "ours"}, id="before the host rebooted: another boot id"),
])
def test_a_lock_row_naming_our_own_pid_from_another_life_does_not_block_apply(
        hs: Harness, plant_lock_holder: Callable[..., None], left: dict[str, str]) -> None:
    boot = boot_id() if left["boot"] == "same" else left["boot"]
    start = process_start(os.getpid()) if left["start"] == "ours" else left["start"]
    for name in LOCKS:  # the in-process apply runs as this very pid
        plant_lock_holder(hs.state_url, name, pid=os.getpid(), boot=boot, start=start)
    run = hs.apply()
    assert run.exit_code == 0, run.output
    assert_in_sync(hs.sb, all_links(hs))


@pytestmark_proc
def test_a_lock_row_naming_an_unrelated_live_process_does_not_block_apply(
        hs: Harness, plant_lock_holder: Callable[..., None], sleeper: subprocess.Popen[bytes]) -> None:
    for name in LOCKS:
        plant_lock_holder(hs.state_url, name, pid=sleeper.pid, boot=boot_id(), start="1")
    run = hs.apply()
    assert run.exit_code == 0, run.output
    assert_in_sync(hs.sb, all_links(hs))


HOLDER = """
import sys
from mapsync.state import open_store
store = open_store(sys.argv[1])
with store.lock(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.read()
store.close()
"""


def test_a_running_holder_still_blocks_apply(hs: Harness) -> None:
    with subprocess.Popen([sys.executable, "-c", HOLDER, hs.state_url, "apply:kunde-customer"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        run = hs.apply()
        holder.communicate("")  # lets go
    assert run.exit_code == 1
    assert f"error: lock 'apply:kunde-customer' on {hs.state_url} is held by pid {holder.pid} on " in run.stderr
    assert "(use --wait SECONDS to wait for it)" in run.stderr
    assert hs.writes() == 0


def test_a_plan_takes_no_lock(h: Harness) -> None:
    """A plan writes nothing, so it runs beside an apply (here: beside every lock held)."""
    other = h.open_another_store()
    with ExitStack() as held:
        for name in LOCKS:
            held.enter_context(other.lock(name))
        run = h.plan()
    assert run.exit_code == 0, run.output
    assert "lock" not in run.output
