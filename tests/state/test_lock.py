"""The run lock: one holder at a time, across stores and processes; a killed holder's lock is recovered."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mapsync.errors import LockHeldError, StateError
from mapsync.state import StateStore
from mapsync.state.sqlite import SqliteStore

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
