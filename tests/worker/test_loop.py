"""The Worker of `mapsync run` against the emulators: scheduled runs, backoff, locks held elsewhere, stopping,
and several workers on one PostgreSQL state."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from waiting import wait_until

from mapsync.sandbox import Faults, Sandbox, SeedSize
from mapsync.spec.loader import load_workspace
from mapsync.spec.model import Workspace
from mapsync.state import open_store
from mapsync.state.postgres import advisory_key, key_halves, split_url
from mapsync.sync.runner import SyncRun
from mapsync.worker.loop import RunOutcome, RunResult, Worker

REPO = Path(__file__).resolve().parents[2]
FLOWS = ("avdeling-customer", "kunde-customer", "prosjekt-project")  # dependency order
STOP_REASON = "stopped: the run was asked to stop"
RAN = {RunOutcome.OK, RunOutcome.PARTIAL, RunOutcome.STOPPED}  # the outcomes of a run that took place


def workspace_dir(tmp_path: Path, run_section: str) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    shutil.copytree(REPO / "mappings", ws / "mappings", dirs_exist_ok=True)
    config = (REPO / "mapsync.yaml").read_text(encoding="utf-8") + run_section
    (ws / "mapsync.yaml").write_text(config, encoding="utf-8")
    return ws


def load(tmp_path: Path, sandbox: Sandbox, state_url: str, run_section: str = "") -> Workspace:
    ws = workspace_dir(tmp_path, run_section)
    return load_workspace(ws / "mapsync.yaml", env=sandbox.env() | {"MAPSYNC_STATE": state_url})


@pytest.fixture
def start_worker() -> Iterator[Callable[..., tuple[Worker, threading.Thread]]]:
    """start_worker(workspace, name=...) -> a Worker looping in a thread; stopped and joined at teardown."""
    started: list[tuple[Worker, threading.Thread]] = []

    def start(workspace: Workspace, name: str = "worker", **kwargs: Any) -> tuple[Worker, threading.Thread]:
        worker = Worker(workspace, **kwargs)
        thread = threading.Thread(target=worker.run_forever, name=name, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker, thread

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(30)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL schema shared by the workers of one test, dropped after."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{pg_server}?schema={schema}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def runs_of(worker: Worker, name: str, outcome: RunOutcome | None = None) -> list[RunResult]:
    return [r for r in list(worker.results) if r.dataflow == name and (outcome is None or r.outcome is outcome)]


def test_each_dataflow_runs_on_its_own_interval_in_dependency_order(
        sandbox: Sandbox, tmp_path: Path, sqlite_url: str,
        start_worker: Callable[..., tuple[Worker, threading.Thread]]) -> None:
    workspace = load(tmp_path, sandbox, sqlite_url, "run:\n  every: 300ms\n  dataflows:\n"
                                                    "    prosjekt-project: {every: 1h}\n")
    worker, thread = start_worker(workspace)
    wait_until(lambda: len(runs_of(worker, "kunde-customer")) >= 3, 15, "three runs of kunde-customer")
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()
    results = list(worker.results)
    assert [r.dataflow for r in results[:3]] == list(FLOWS)  # the first round, referenced dataflows first
    assert all(r.outcome is RunOutcome.OK for r in results), [(r.dataflow, r.outcome) for r in results]
    assert len(runs_of(worker, "prosjekt-project")) == 1  # its own interval: an hour
    assert results[1].report.dataflows["kunde-customer"].counts.created == 10
    assert len(sandbox.custompms.records("customers")) == 13
    later = runs_of(worker, "kunde-customer")[1:]
    assert all(r.report.dataflows["kunde-customer"].counts.created == 0 for r in later)  # in sync: no writes
    assert all(r.next_in == pytest.approx(0.3) for r in later[:-1])


def test_a_failing_dataflow_is_backed_off_and_reset_when_it_runs_again(
        sandbox: Sandbox, tmp_path: Path, sqlite_url: str) -> None:
    workspace = load(tmp_path, sandbox, sqlite_url, "run:\n  every: 100ms\n")
    for settings in workspace.connections.values():
        settings["max_retries"] = 0
    worker = Worker(workspace)
    sandbox.set_faults(Faults(rate_503=1.0))
    failed = [worker.run_dataflow("avdeling-customer") for _ in range(4)]
    assert [r.outcome for r in failed] == [RunOutcome.FAILED] * 4
    assert [r.next_in for r in failed] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert worker.schedule.failures("avdeling-customer") == 4
    sandbox.set_faults(Faults())
    ok = worker.run_dataflow("avdeling-customer")
    assert ok.outcome is RunOutcome.OK and ok.next_in == pytest.approx(0.1)
    assert worker.schedule.failures("avdeling-customer") == 0


def test_a_dataflow_locked_elsewhere_is_taken_elsewhere_not_failed(
        sandbox: Sandbox, tmp_path: Path, store_url: str) -> None:
    workspace = load(tmp_path, sandbox, store_url, "run:\n  every: 2s\n")
    worker = Worker(workspace)
    store = open_store(store_url)
    try:
        with store.lock("apply:kunde-customer"):
            taken = worker.run_dataflow("kunde-customer")
    finally:
        store.close()
    assert taken.outcome is RunOutcome.TAKEN and taken.next_in == 2.0
    assert worker.schedule.failures("kunde-customer") == 0
    assert sandbox.custompms.records("customers") == []  # nothing was read or written
    again = worker.run_dataflow("kunde-customer")
    assert again.outcome is RunOutcome.OK
    assert again.report.dataflows["kunde-customer"].counts.created == 10


def test_stop_ends_the_run_at_a_batch_boundary_frees_the_lock_and_loses_nothing(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, sqlite_url: str,
        start_worker: Callable[..., tuple[Worker, threading.Thread]]) -> None:
    sandbox = make_sandbox(seed=SeedSize(avdelinger=2, kunder=60, prosjekter=0), rng_seed=1)
    sandbox.custompms.faults = Faults(latency=0.05)
    workspace = load(tmp_path, sandbox, sqlite_url, "run:\n  every: 1h\n")
    worker, thread = start_worker(workspace)
    wait_until(lambda: len(sandbox.custompms.records("customers")) >= 6, 20, "kunde-customer creating")
    stopped_at = time.monotonic()
    worker.stop()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - stopped_at < 5
    last = list(worker.results)[-1]
    assert (last.dataflow, last.outcome) == ("kunde-customer", RunOutcome.STOPPED)
    assert f"kunde-customer: {STOP_REASON}" in last.report.dataflows["kunde-customer"].errors
    assert len(sandbox.custompms.records("customers")) < 62  # it did stop part way
    assert worker.trigger("kunde-customer") == "the worker is stopping"
    store = open_store(sqlite_url)
    try:
        with store.lock("apply:kunde-customer"):
            pass  # free
    finally:
        store.close()
    # The next worker finishes the job, with no duplicate.
    sandbox.custompms.faults = Faults()
    assert all(r.outcome is RunOutcome.OK for r in Worker(workspace).run_once())
    assert len(sandbox.custompms.records("customers")) == 62  # each created once


@pytest.mark.postgres
def test_two_workers_share_the_dataflows_and_never_run_one_at_once(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
        start_worker: Callable[..., tuple[Worker, threading.Thread]]) -> None:
    sandbox = make_sandbox(seed=SeedSize(avdelinger=2, kunder=8, prosjekter=8), rng_seed=1)
    sandbox.set_faults(Faults(latency=0.02))
    held: list[tuple[str, str, float, float]] = []  # (worker, dataflow, start, end) inside the dataflow's lock
    real = SyncRun._apply_dataflow

    def timed(run: SyncRun, spec: Any, *args: Any, **kwargs: Any) -> None:
        started = time.monotonic()
        try:
            real(run, spec, *args, **kwargs)
        finally:
            held.append((threading.current_thread().name, spec.name, started, time.monotonic()))

    monkeypatch.setattr(SyncRun, "_apply_dataflow", timed)
    workspace = load(tmp_path, sandbox, pg_url, "run:\n  every: 200ms\n")
    one, _ = start_worker(workspace, "one")
    two, _ = start_worker(workspace, "two")
    wait_until(lambda: len(held) >= 24, 30, "24 dataflow runs")
    one.stop()
    two.stop()
    for name in FLOWS:
        spans = sorted((start, end) for _, flow, start, end in held if flow == name)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans)), name
    assert {worker for worker, *_ in held} == {"one", "two"}  # both did some of the work
    results = list(one.results) + list(two.results)
    assert any(r.outcome is RunOutcome.TAKEN for r in results)  # and each found the other at work
    assert not [r for r in results if r.outcome is RunOutcome.FAILED]
    # A dataflow run while another worker syncs the one it references defers the records it cannot name yet
    # (partial: nothing failed); the next run links them.
    partial = [r.report.dataflows[r.dataflow].counts for r in results if r.outcome is RunOutcome.PARTIAL]
    assert all(counts.failed == 0 and counts.deferred for counts in partial)
    assert len(sandbox.custompms.records("customers")) == 10  # every record created once


def _lock_held_by(pg_server: str, state_url: str, pid: int) -> list[str]:
    """The dataflows whose run lock process `pid` holds on the state's PostgreSQL schema."""
    _, schema = split_url(state_url)
    held = []
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in FLOWS:
            if conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE a.application_name LIKE %s AND l.locktype = 'advisory' AND l.granted "
                    "AND l.classid::bigint = %s AND l.objid::bigint = %s",
                    (f"mapsync lock: pid {pid} %", *key_halves(advisory_key(f"{schema}/apply:{name}")))
            ).fetchall()[0][0]:
                held.append(name)
    return held


@pytest.mark.postgres
def test_a_killed_workers_dataflow_is_taken_by_the_other_at_its_next_due_time(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, pg_url: str, pg_server: str,
        start_worker: Callable[..., tuple[Worker, threading.Thread]]) -> None:
    sandbox = make_sandbox(seed=SeedSize(avdelinger=2, kunder=100, prosjekter=0), rng_seed=1)
    sandbox.custompms.faults = Faults(latency=0.05)
    workspace = load(tmp_path, sandbox, pg_url, "run:\n  every: 300ms\n")
    env = os.environ | sandbox.env() | {"MAPSYNC_STATE": pg_url}
    doomed = subprocess.Popen([sys.executable, "-m", "mapsync", "--config", str(workspace.config_file), "run"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "kunde-customer" in _lock_held_by(pg_server, pg_url, doomed.pid), 20,
                   "the first worker syncing kunde-customer")
        other, _ = start_worker(workspace, "other")
        wait_until(lambda: bool(runs_of(other, "kunde-customer", RunOutcome.TAKEN)), 10, "kunde-customer taken")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        doomed.kill()
        doomed.wait()
    wait_until(lambda: bool(runs_of(other, "kunde-customer", RunOutcome.OK)), 30, "kunde-customer synced by the other")
    # each created once: the creates the killed worker left unfinished are found again, not repeated
    assert len(sandbox.custompms.records("customers")) == 102


def test_a_state_store_that_cannot_be_opened_fails_the_dataflow_and_backs_it_off(
        sandbox: Sandbox, tmp_path: Path, sqlite_url: str) -> None:
    workspace = load(tmp_path, sandbox, sqlite_url, "run:\n  every: 1s\n")
    (tmp_path / "not-a-folder").write_text("", encoding="utf-8")
    workspace.state_url = f"sqlite:///{tmp_path}/not-a-folder/state.db"
    worker = Worker(workspace)
    first, second = worker.run_dataflow("kunde-customer"), worker.run_dataflow("kunde-customer")
    assert (first.outcome, second.outcome) == (RunOutcome.FAILED, RunOutcome.FAILED)
    assert (first.next_in, second.next_in) == (1.0, 2.0)
    flow = second.report.dataflows["kunde-customer"]
    assert flow.status == "failed" and flow.errors[0].startswith("kunde-customer: ")


@pytest.mark.postgres
def test_two_workers_make_one_run_per_interval_not_one_each(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, pg_url: str,
        start_worker: Callable[..., tuple[Worker, threading.Thread]]) -> None:
    sandbox = make_sandbox(seed=SeedSize(avdelinger=2, kunder=4, prosjekter=4), rng_seed=1)
    workspace = load(tmp_path, sandbox, pg_url, "run:\n  every: 1s\n")
    one, one_thread = start_worker(workspace, "one")
    two, two_thread = start_worker(workspace, "two")
    time.sleep(4.2)  # runs at about 0, 1, 2, 3 and 4 s (each a little later: the interval follows a run's end)
    for worker, thread in ((one, one_thread), (two, two_thread)):
        worker.stop()
        thread.join(10)
    results = list(one.results) + list(two.results)
    for name in FLOWS:  # both workers in this process: their monotonic clocks compare
        ran = sorted((r for r in results if r.dataflow == name and r.outcome in RAN), key=lambda r: r.started)
        assert 2 <= len(ran) <= 5, (name, [(str(r.outcome), round(r.started, 2)) for r in ran])
        gaps = [later.started - earlier.finished for earlier, later in itertools.pairwise(ran)]
        assert all(gap > 0.9 for gap in gaps), (name, gaps)  # never again before the interval is over
    assert any(r.outcome is RunOutcome.NOT_DUE for r in results)  # a worker looked, found it just run, and waited
    assert not [r for r in results if r.outcome is RunOutcome.FAILED]
    store = open_store(pg_url)
    try:
        entry = store.get_schedule("kunde-customer")
    finally:
        store.close()
    # the last run's end is recorded (the stop may have cut it short)
    assert entry is not None and entry.status in {"ok", "partial", "stopped"} and entry.finished_at
    assert entry.failures == 0


def test_a_restarted_worker_keeps_the_backoff_and_a_trigger_still_forces_a_run(
        sandbox: Sandbox, tmp_path: Path, store_url: str,
        start_worker: Callable[..., tuple[Worker, threading.Thread]]) -> None:
    workspace = load(tmp_path, sandbox, store_url, "run:\n  every: 1s\n")
    for settings in workspace.connections.values():
        settings["max_retries"] = 0
    sandbox.set_faults(Faults(rate_503=1.0))
    before = Worker(workspace)
    assert [before.run_dataflow("avdeling-customer").outcome for _ in range(3)] == [RunOutcome.FAILED] * 3
    sandbox.set_faults(Faults())

    restarted = Worker(workspace)  # a new process: its own timers say everything is due now
    waits = restarted.run_dataflow("avdeling-customer", when_due=True)
    assert waits.outcome is RunOutcome.NOT_DUE and 3.0 < (waits.next_in or 0) <= 4.0  # 1s, doubled twice
    assert restarted.schedule.failures("avdeling-customer") == 3
    assert sandbox.custompms.records("customers") == []  # nothing was read or written

    worker, _ = start_worker(workspace, "restarted")
    wait_until(lambda: bool(runs_of(worker, "kunde-customer", RunOutcome.OK)), 15, "kunde-customer synced")
    assert [r.outcome for r in runs_of(worker, "avdeling-customer")] == [RunOutcome.NOT_DUE]  # still backing off
    assert worker.trigger("avdeling-customer") is None
    wait_until(lambda: bool(runs_of(worker, "avdeling-customer", RunOutcome.OK)), 15, "the triggered run")
    store = open_store(store_url)
    try:
        entry = store.get_schedule("avdeling-customer")
    finally:
        store.close()
    assert entry is not None and (entry.status, entry.failures) == ("ok", 0)
