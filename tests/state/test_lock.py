"""The run lock: one holder at a time, across stores and processes; a killed holder's lock is recovered;
a holder that lost its lock notices before its next write (the fence); SQLite tells a live holder from a
reused pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from mapsync.errors import LockHeldError, LockLostError, StateError
from mapsync.state import Link, StateStore, open_store
from mapsync.state._sql import SqlStore
from mapsync.state.sqlite import SqliteStore, boot_id, process_start

PlantLockHolder = Callable[..., None]

ME = f"pid {os.getpid()} on {socket.gethostname()}"

HOLDER = """
import sys, time
from mapsync.state import open_store
store = open_store(sys.argv[1])
with store.lock("run"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
store.close()
"""


@contextmanager
def holder_process(url: str, hold: float) -> Iterator[subprocess.Popen[str]]:
    """A child process that takes lock "run" and holds it for `hold` seconds."""
    with subprocess.Popen([sys.executable, "-c", HOLDER, url, str(hold)], stdout=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "locked"
            yield child
        finally:
            child.kill()
            child.wait()


def test_a_held_lock_is_refused_at_once_naming_its_holder(
        store: StateStore, open_stores: Callable[[], StateStore]) -> None:
    other = open_stores()
    with store.lock("run"):
        with pytest.raises(LockHeldError, match=f"lock 'run' on .* is held by {ME}"), other.lock("run"):
            pass
        with other.lock("another-dataflow"):  # locks are by name
            pass
    with other.lock("run"):  # released on exit
        pass


def test_a_lock_is_released_when_the_block_raises(
        store: StateStore, open_stores: Callable[[], StateStore]) -> None:
    with pytest.raises(RuntimeError), store.lock("run"):
        raise RuntimeError("run failed")
    with open_stores().lock("run"):
        pass


def test_waiting_for_a_held_lock_gives_up_after_the_wait(
        store: StateStore, open_stores: Callable[[], StateStore]) -> None:
    other = open_stores()
    with store.lock("run"):
        started = time.monotonic()
        with pytest.raises(LockHeldError, match=r"waited 0\.3s"), other.lock("run", wait=0.3):
            pass
        assert time.monotonic() - started >= 0.3


def test_a_waiting_run_gets_the_lock_when_the_holder_lets_go(store_url: str, store: StateStore) -> None:
    with holder_process(store_url, hold=0.5) as child:
        with pytest.raises(LockHeldError, match=f"pid {child.pid} on"), store.lock("run"):
            pass
        with store.lock("run", wait=15):
            assert child.wait(timeout=5) == 0  # it let go by finishing normally


def test_the_lock_of_a_killed_process_is_recovered(store_url: str, store: StateStore) -> None:
    with holder_process(store_url, hold=60) as child:
        child.send_signal(signal.SIGKILL)
        child.wait()  # reaped: a zombie would still answer os.kill(pid, 0)
        # PostgreSQL notices the dropped connection within moments; SQLite checks the pid at once.
        with store.lock("run", wait=5):
            pass


def test_the_lock_is_taken_outside_a_transaction(store: StateStore) -> None:
    with pytest.raises(StateError, match="not inside one"), store.transaction(), store.lock("run"):
        pass


def test_a_sqlite_lock_whose_heartbeat_stopped_is_taken_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with SqliteStore.open(url) as first, SqliteStore.open(url, stale_after=0.05) as impatient, \
            SqliteStore.open(url) as third:
        first_lock = first.lock("run")
        first_lock.__enter__()
        time.sleep(0.1)  # longer than `impatient` tolerates without a heartbeat
        with impatient.lock("run"):
            first_lock.__exit__(None, None, None)  # the old owner lets go of what is no longer its own
            with pytest.raises(LockHeldError), third.lock("run"):
                pass


def test_a_sqlite_lock_held_with_a_heartbeat_stays_fresh(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with SqliteStore.open(url, heartbeat_every=0.02) as holder, \
            SqliteStore.open(url, stale_after=0.2) as impatient, holder.lock("run"):
        time.sleep(0.3)  # past `stale_after`, but the heartbeat has kept the lock fresh
        with pytest.raises(LockHeldError), impatient.lock("run"):
            pass


# -- fencing: a run notices losing its lock before its next write -------------------------------------


@pytest.fixture
def take_over(store_url: str, request: pytest.FixtureRequest
              ) -> Callable[[str], AbstractContextManager[StateStore]]:
    """take_over(name): a context holding lock `name` in another store, taken from its live holder.

    On PostgreSQL the holder's lock connection is dropped first (as a network blip would); on SQLite the
    taker deems the holder stale, as one does whose heartbeat it no longer sees. The whole context may run
    in another thread."""
    drop = None if store_url.startswith("sqlite") else request.getfixturevalue("drop_lock_connections")

    @contextmanager
    def take(name: str) -> Iterator[StateStore]:
        if drop is None:
            taker: StateStore = SqliteStore.open(store_url, stale_after=0)
        else:
            assert drop(store_url, [name]) == 1
            taker = open_store(store_url)
        try:
            with taker.lock(name, wait=10):
                yield taker
        finally:
            taker.close()

    return take


def test_a_held_lock_checks_clean_until_another_run_takes_it_over(
        store: StateStore, take_over: Callable[[str], AbstractContextManager[StateStore]]) -> None:
    with store.lock("run") as lock:
        lock.check()
        with store.transaction():
            lock.check()
        with take_over("run"), pytest.raises(LockLostError, match=r"lost the run lock 'run' on .*: stopped "
                                                                   "before writing more"):
            lock.check()
        with pytest.raises(LockLostError):  # once lost, always lost: the lock is free again, but not ours
            lock.check()


def test_a_lock_whose_generation_moved_is_lost(store: StateStore, open_stores: Callable[[], StateStore]) -> None:
    other = open_stores()
    assert isinstance(other, SqlStore)
    with store.lock("run") as lock:
        other._write("UPDATE lock_fences SET generation = generation + 1 WHERE name = ?", ("run",))
        with pytest.raises(LockLostError, match="another run has taken it since"):
            lock.check()


def test_taking_a_lock_over_waits_for_the_holders_fenced_transaction(
        store: StateStore, take_over: Callable[[str], AbstractContextManager[StateStore]]) -> None:
    """The check inside a transaction is atomic with its writes: what the old holder commits after a
    clean check lands before the new holder starts, never beside it."""
    seen: list[int] = []

    def new_run() -> None:
        with take_over("run") as taker:
            seen.append(taker.count_links("kunde"))

    with store.lock("run") as lock:
        with store.transaction():
            lock.check()
            thread = threading.Thread(target=new_run)
            thread.start()
            time.sleep(0.5)
            assert thread.is_alive(), "the new run took the lock while a fenced transaction was open"
            store.put_link(Link("kunde", "S1", "T1"))
        thread.join(timeout=15)
        assert seen == [1]
        with pytest.raises(LockLostError):
            lock.check()


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_dropped_lock_connection_is_noticed_before_anyone_takes_the_lock(
        store: StateStore, store_url: str, drop_lock_connections: Callable[[str, list[str]], int]) -> None:
    with store.lock("run") as lock:
        assert drop_lock_connections(store_url, ["run"]) == 1
        with pytest.raises(LockLostError, match=r"its connection to the server dropped .*terminating connection"):
            lock.check()


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_lock_connection_outlives_the_servers_idle_session_timeout(store_url: str) -> None:
    impatient = open_store(store_url + "&options=-c%20idle_session_timeout%3D200")  # ends idle sessions
    try:
        with impatient.lock("run") as lock:
            time.sleep(0.6)
            lock.check()
            impatient.put_link(Link("kunde", "S1", "T1"))
    finally:
        impatient.close()


# -- SQLite: who holds a lock row (host, boot id, pid, process start) ----------------------------------


needs_proc = pytest.mark.skipif(not process_start(os.getpid()), reason="no /proc to tell process start times")


@needs_proc
@pytest.mark.parametrize("row", [
    pytest.param({"boot": "same", "start": "1"}, id="our own pid, started at another time (a restarted container)"),
    pytest.param({"boot": "another-boot", "start": "ours"}, id="our own pid, from before the host booted"),
    pytest.param({"boot": "", "start": "1"}, id="our own pid, another start, no boot id recorded"),
])
def test_a_row_naming_our_own_pid_of_another_process_is_taken_at_once(
        tmp_path: Path, row: dict[str, str], plant_lock_holder: PlantLockHolder) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    boot = boot_id() if row["boot"] == "same" else row["boot"]
    start = process_start(os.getpid()) if row["start"] == "ours" else row["start"]
    plant_lock_holder(url, "run", pid=os.getpid(), boot=boot, start=start)
    with SqliteStore.open(url) as store, store.lock("run") as lock:
        lock.check()


@needs_proc
def test_a_row_naming_a_live_pid_started_at_another_time_is_taken_at_once(
        tmp_path: Path, sleeper: subprocess.Popen[bytes], plant_lock_holder: PlantLockHolder) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    plant_lock_holder(url, "run", pid=sleeper.pid, boot=boot_id(), start="1")
    with SqliteStore.open(url) as store, store.lock("run"):
        pass


@needs_proc
def test_a_row_naming_a_live_process_as_it_is_blocks(
        tmp_path: Path, sleeper: subprocess.Popen[bytes], plant_lock_holder: PlantLockHolder) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    plant_lock_holder(url, "run", pid=sleeper.pid, boot=boot_id(), start=process_start(sleeper.pid))
    with SqliteStore.open(url) as store, pytest.raises(LockHeldError, match=f"held by pid {sleeper.pid} on"), \
            store.lock("run"):
        pass


def test_a_row_of_an_older_mapsync_falls_back_to_the_pid(
        tmp_path: Path, sleeper: subprocess.Popen[bytes], plant_lock_holder: PlantLockHolder) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    plant_lock_holder(url, "run", pid=sleeper.pid, boot="", start="")  # schema 1 knew neither
    with SqliteStore.open(url) as store:
        with pytest.raises(LockHeldError, match=f"held by pid {sleeper.pid} on"), store.lock("run"):
            pass
        sleeper.kill()
        sleeper.wait()
        with store.lock("run"):
            pass


@needs_proc
def test_process_start_reads_field_22_of_proc_stat() -> None:
    with subprocess.Popen(["sleep", "60"]) as child:
        started = process_start(child.pid)
        child.kill()
    assert started.isdigit() and int(started) >= int(process_start(os.getpid()))  # started after us
    assert process_start(child.pid) == ""  # reaped: no such process
    assert process_start(2**22 + 12345) == ""
