"""`mapsync run`: --once like apply, flags checked, the endpoint served, and SIGTERM as a real process gets it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner, Result
from waiting import wait_until

from mapsync.cli._app import _register_commands, cli
from mapsync.sandbox import Faults, Sandbox, SeedSize
from mapsync.state import open_store
from mapsync.state.postgres import advisory_key, key_halves, split_url

REPO = Path(__file__).resolve().parents[2]
FLOWS = ("avdeling-customer", "kunde-customer", "prosjekt-project")

_register_commands()


def make_workspace(tmp_path: Path, run_section: str = "") -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    shutil.copytree(REPO / "mappings", ws / "mappings", dirs_exist_ok=True)
    (ws / "mapsync.yaml").write_text((REPO / "mapsync.yaml").read_text(encoding="utf-8") + run_section,
                                     encoding="utf-8")
    return ws / "mapsync.yaml"


def invoke(config: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "run", *args], env=env)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{pg_server}?schema={schema}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_once_syncs_each_dataflow_and_exits_0(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_workspace(tmp_path)
    env = sandbox.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db"}
    result = invoke(config, env, "--once", "--json-report", str(tmp_path / "report.json"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert list(report["dataflows"]) == list(FLOWS) and report["status"] == "ok"
    assert report["total"]["created"] == 33 == len(sandbox.custompms.records("customers")) + \
        len(sandbox.custompms.records("projects"))
    assert "kunde-customer" in result.stdout  # the summary table, as apply prints it


def test_once_exits_1_when_a_dataflow_fails(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_workspace(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["connections"]["custompms"]["max_retries"] = 1  # still retried, without 5 backoffs' wait
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    sandbox.set_faults(Faults(rate_503=1.0, paths=("/api/v1/projects",)))
    env = sandbox.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db"}
    result = invoke(config, env, "--once")
    assert result.exit_code == 1, result.output
    assert "error: prosjekt-project" in result.stderr
    assert "Traceback" not in result.output


def test_once_skips_a_dataflow_another_worker_holds(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_workspace(tmp_path)
    url = f"sqlite:///{tmp_path}/state.db"
    store = open_store(url)
    try:
        with store.lock("apply:prosjekt-project"):
            result = invoke(config, sandbox.env() | {"MAPSYNC_STATE": url}, "--once")
    finally:
        store.close()
    assert result.exit_code == 0, result.output
    assert "prosjekt-project: skipped: another worker is syncing it" in result.stderr
    assert sandbox.custompms.records("projects") == []


@pytest.mark.parametrize(("args", "message"), [
    (["--every", "5x"], "'5x' is not a duration"),
    (["--every", "0s"], "out of range"),
    (["--listen", "nowhere"], "is not HOST:PORT"),
    (["--json-report", "r.json"], "goes with --once"),
])
def test_unusable_flags_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke(make_workspace(tmp_path), {}, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_bad_run_section_is_reported_with_file_and_line(tmp_path: Path) -> None:
    config = make_workspace(tmp_path, "run:\n  every: soon\n  full_scan: \"99 * * * *\"\n")
    result = invoke(config, {}, "--once")
    assert result.exit_code == 2
    assert "mapsync.yaml:20: run.every: 'soon' is not a duration" in result.output
    assert "mapsync.yaml:21: run.full_scan: '99 * * * *' is not a cron expression" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, *, method: str = "GET", token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def spawn(config: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mapsync", "--config", str(config), "run", *args],
                            env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_endpoint_serves_metrics_and_triggers_a_dataflow(sandbox: Sandbox, tmp_path: Path) -> None:
    port = _free_port()
    config = make_workspace(tmp_path, "run:\n  every: 1h\n  trigger_token: ${H6_TEST_TOKEN}\n")
    env = sandbox.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db", "H6_TEST_TOKEN": "s3cret-token"}
    worker = spawn(config, env, "--listen", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: 'mapsync_runs_total{dataflow="prosjekt-project",status="ok"} 1.0' in _scrape(base), 20,
                   "the first round in /metrics")
        sandbox.tidsbanken.edit("Kunde", sandbox.tidsbanken.records("Kunde")[0]["Id"], Navn="Utløst AS")
        assert _get(f"{base}/trigger/kunde-customer", method="POST")[0] == 401
        assert _get(f"{base}/trigger/kunde-customer", method="POST", token="s3cret-token")[0] == 202
        wait_until(lambda: 'mapsync_runs_total{dataflow="kunde-customer",status="ok"} 2.0' in _scrape(base), 20,
                   "the triggered run in /metrics")
        assert any(c["name"] == "Utløst AS" for c in sandbox.custompms.records("customers"))
        assert 'mapsync_runs_total{dataflow="avdeling-customer",status="ok"} 1.0' in _scrape(base)  # not due
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()
    assert b"s3cret-token" not in out + err


def _scrape(base: str) -> str:
    try:
        return _get(f"{base}/metrics")[1]
    except OSError:
        return ""  # not listening yet


def _locks_of(pg_server: str, state_url: str, pid: int) -> int:
    _, schema = split_url(state_url)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        return sum(conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name "
            "LIKE %s AND l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s",
            (f"mapsync lock: pid {pid} %", *key_halves(advisory_key(f"{schema}/apply:{name}")))).fetchall()[0][0]
            for name in FLOWS)


@pytest.mark.postgres
def test_sigterm_mid_run_stops_cleanly_with_exit_0_and_frees_the_locks(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, pg_url: str, pg_server: str) -> None:
    sandbox = make_sandbox(seed=SeedSize(avdelinger=2, kunder=80, prosjekter=0), rng_seed=1)
    sandbox.custompms.faults = Faults(latency=0.05)
    config = make_workspace(tmp_path)
    worker = spawn(config, sandbox.env() | {"MAPSYNC_STATE": pg_url}, "--every", "1s")
    try:
        wait_until(lambda: len(sandbox.custompms.records("customers")) >= 8, 30, "kunde-customer creating")
        assert _locks_of(pg_server, pg_url, worker.pid) == 1
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == 0, err.decode()
    assert time.monotonic() - signalled < 30
    assert b"Traceback" not in out + err
    assert len(sandbox.custompms.records("customers")) < 82  # it stopped part way
    store = open_store(pg_url)
    try:
        for name in FLOWS:
            with store.lock(f"apply:{name}"):
                pass  # every lock is free
    finally:
        store.close()
    sandbox.custompms.faults = Faults()
    result = invoke(config, sandbox.env() | {"MAPSYNC_STATE": pg_url}, "--once")
    assert result.exit_code == 0, result.output
    assert len(sandbox.custompms.records("customers")) == 82  # finished by the next run, nothing twice
