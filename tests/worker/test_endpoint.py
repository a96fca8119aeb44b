"""The worker's HTTP endpoint on a real socket (127.0.0.1, port 0): health, readiness against the emulators,
/metrics of a real run checked against that run's JSON report, and the trigger's authorisation."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mapsync.errors import LockHeldError
from mapsync.observe.metrics import RECORD_OUTCOMES, Metrics
from mapsync.sandbox import Sandbox
from mapsync.spec.loader import load_workspace
from mapsync.spec.model import Workspace
from mapsync.sync.runner import SyncRun
from mapsync.worker.endpoint import Endpoint, EndpointError, parse_listen, readiness, serve

REPO = Path(__file__).resolve().parents[2]
TOKEN = "trigger-secret-token"
FLOWS = ("avdeling-customer", "kunde-customer", "prosjekt-project")


def _workspace(tmp_path: Path, env: dict[str, str]) -> Workspace:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    shutil.copy(REPO / "mapsync.yaml", ws / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", ws / "mappings", dirs_exist_ok=True)
    return load_workspace(ws / "mapsync.yaml", env={"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db", **env})


@pytest.fixture
def start() -> Iterator[Callable[..., Endpoint]]:
    """start(**serve keywords) -> an endpoint on 127.0.0.1 port 0, closed at teardown."""
    started: list[Endpoint] = []

    def make(**kwargs: Any) -> Endpoint:
        options: dict[str, Any] = {"metrics": Metrics(), "ready": list, "trigger": lambda name: None,
                                   "dataflows": FLOWS, "token": TOKEN}
        endpoint = serve("127.0.0.1:0", **(options | kwargs))
        started.append(endpoint)
        return endpoint

    yield make
    for endpoint in started:
        endpoint.close()


def url(endpoint: Endpoint, path: str) -> str:
    host, port = endpoint.address
    return f"http://{host}:{port}{path}"


def test_healthz_answers_ok_and_nothing_is_logged(start: Callable[..., Endpoint],
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    endpoint = start()
    answer = httpx.get(url(endpoint, "/healthz"))
    assert (answer.status_code, answer.text) == (200, "ok\n")
    assert httpx.get(url(endpoint, "/nowhere")).status_code == 404
    assert httpx.post(url(endpoint, "/metrics")).status_code == 405
    out, err = capfd.readouterr()
    assert out == err == ""


def test_metrics_of_a_real_run_match_its_json_report(tmp_path: Path, sandbox: Sandbox,
                                                     start: Callable[..., Endpoint]) -> None:
    workspace = _workspace(tmp_path, sandbox.env())
    metrics = Metrics()
    with SyncRun(workspace) as run:
        report = run.apply()
        metrics.observe_report(report, run.store)
    expected = report.to_json()
    assert expected["status"] == "ok" and expected["total"]["created"] > 0

    answer = httpx.get(url(start(metrics=metrics), "/metrics"))
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(answer.text) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples[name, tuple(sorted(labels.items()))]

    assert set(expected["dataflows"]) == set(FLOWS)
    for name, flow in expected["dataflows"].items():
        assert value("mapsync_runs_total", dataflow=name, status="ok") == 1
        for outcome in RECORD_OUTCOMES:
            assert value("mapsync_records_total", dataflow=name, outcome=outcome) == flow[outcome]
        assert value("mapsync_run_duration_seconds_count", dataflow=name) == 1
        assert value("mapsync_last_success_timestamp_seconds", dataflow=name) == pytest.approx(
            report.finished_at.timestamp() if report.finished_at else 0)
        assert value("mapsync_failed_records", dataflow=name) == 0
        assert value("mapsync_conflicts_waiting", dataflow=name) == 0
    for connection, methods in expected["requests"].items():
        for method, count in methods.items():
            assert sum(v for (metric, labels), v in samples.items() if metric == "mapsync_requests_total"
                       and dict(labels)["connection"] == connection and dict(labels)["method"] == method) == count


def test_readyz_is_503_with_each_problem_on_its_line(start: Callable[..., Endpoint]) -> None:
    problems: list[str] = []
    endpoint = start(ready=lambda: list(problems))
    assert httpx.get(url(endpoint, "/readyz")).status_code == 200
    problems[:] = ["state: cannot open", "custompms: no answer within 5s"]
    answer = httpx.get(url(endpoint, "/readyz"))
    assert (answer.status_code, answer.text) == (503, "state: cannot open\ncustompms: no answer within 5s\n")


def test_readyz_survives_a_check_that_raises(start: Callable[..., Endpoint]) -> None:
    def broken() -> list[str]:
        raise LockHeldError("postgresql://u:pw-secret@db/x is busy")

    answer = httpx.get(url(start(ready=broken), "/readyz"))
    assert answer.status_code == 503
    assert "pw-secret" not in answer.text and "Traceback" not in answer.text


def test_readiness_asks_the_state_store_and_every_connection(tmp_path: Path, empty_sandbox: Sandbox) -> None:
    assert readiness(_workspace(tmp_path, empty_sandbox.env()))() == []
    wrong_key = _workspace(tmp_path, empty_sandbox.env() | {"TIDSBANKEN_API_KEY": "wrong-secret-value",
                                                             "CUSTOMPMS_URL": "http://127.0.0.1:9"})
    problems = readiness(wrong_key)()
    assert [p.split(":", 1)[0] for p in problems] == ["tidsbanken", "custompms"]
    assert "401" in problems[0]
    assert not any("wrong-secret-value" in p for p in problems)


def test_readiness_names_a_state_store_that_cannot_be_opened(tmp_path: Path, empty_sandbox: Sandbox) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    workspace = _workspace(tmp_path, empty_sandbox.env()
                           | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/blocker/state.db"})
    [problem] = readiness(workspace)()
    assert problem.startswith("state: ")


def test_readiness_is_bounded_by_its_timeout(tmp_path: Path, empty_sandbox: Sandbox) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections (the backlog) and never answers
    try:
        port = silent.getsockname()[1]
        workspace = _workspace(tmp_path, empty_sandbox.env() | {"CUSTOMPMS_URL": f"http://127.0.0.1:{port}"})
        [problem] = readiness(workspace, timeout=0.5)()
        assert problem.startswith("custompms: ")
    finally:
        silent.close()


def test_trigger_needs_the_bearer_token(start: Callable[..., Endpoint]) -> None:
    called: list[str] = []

    def trigger(name: str) -> str | None:
        called.append(name)
        return None

    endpoint = start(trigger=trigger)
    target = url(endpoint, "/trigger/kunde-customer")
    refused = httpx.post(target)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert httpx.post(target, headers={"Authorization": "Bearer not-it"}).status_code == 401
    assert httpx.post(target, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert called == []
    # the token before the name: a stranger cannot tell a known dataflow from an unknown one
    assert httpx.post(url(endpoint, "/trigger/nope")).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(url(endpoint, "/trigger/nope"), headers=auth).status_code == 404
    accepted = httpx.post(target, headers=auth)
    assert (accepted.status_code, accepted.text) == (202, "accepted: kunde-customer\n")
    assert called == ["kunde-customer"]
    assert httpx.get(target, headers=auth).status_code == 405


def test_trigger_is_refused_when_no_token_is_set(start: Callable[..., Endpoint]) -> None:
    answer = httpx.post(url(start(token=None), "/trigger/kunde-customer"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 403
    assert "trigger_token" in answer.text


def test_trigger_refusals_carry_the_workers_message(start: Callable[..., Endpoint]) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    busy = start(trigger=lambda name: f"{name} is running now")
    answer = httpx.post(url(busy, "/trigger/kunde-customer"), headers=auth)
    assert (answer.status_code, answer.text) == (409, "kunde-customer is running now\n")

    def stopping(name: str) -> str | None:
        raise LockHeldError("the worker is stopping")

    answer = httpx.post(url(start(trigger=stopping), "/trigger/kunde-customer"), headers=auth)
    assert (answer.status_code, answer.text) == (503, "the worker is stopping\n")

    def buggy(name: str) -> str | None:
        raise RuntimeError("boom")

    answer = httpx.post(url(start(trigger=buggy), "/trigger/kunde-customer"), headers=auth)
    assert (answer.status_code, answer.text) == (500, "internal error\n")


def test_a_large_trigger_body_is_refused_unread(start: Callable[..., Endpoint]) -> None:
    answer = httpx.post(url(start(), "/trigger/kunde-customer"), content=b"x" * 100_000,
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 413


@pytest.mark.parametrize(("listen", "expected"), [
    (":9100", ("127.0.0.1", 9100)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:0", ("::1", 0)),
    ("metrics.local:9100", ("metrics.local", 9100)),
])
def test_listen_is_host_and_port_and_loopback_by_default(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9100", "host:", "host:port", "host:70000", ""])
def test_a_listen_value_that_is_not_host_and_port_is_refused(listen: str) -> None:
    with pytest.raises(EndpointError, match="expected HOST:PORT"):
        parse_listen(listen)


def test_a_port_in_use_is_one_clear_error(start: Callable[..., Endpoint]) -> None:
    _, port = start().address
    with pytest.raises(EndpointError, match=f"cannot listen on 127.0.0.1:{port}: "):
        serve(f"127.0.0.1:{port}", metrics=Metrics(), ready=list, trigger=lambda name: None, dataflows=FLOWS,
              token=None)


def test_close_frees_the_port_and_stops_the_thread() -> None:
    before = threading.active_count()
    endpoint = serve(":0", metrics=Metrics(), ready=list, trigger=lambda name: None, dataflows=(), token=None)
    host, port = endpoint.address
    assert host == "127.0.0.1"
    endpoint.close()
    assert threading.active_count() == before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
