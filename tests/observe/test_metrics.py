"""Metrics of a run: `apply --push-metrics` against the emulators and a stand-in Pushgateway, the pushed
body parsed with prometheus-client's own parser and checked against the JSON report of the same run."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from mapsync.cli._app import _register_commands, cli
from mapsync.observe.metrics import RECORD_OUTCOMES, Metrics, MetricsPushError
from mapsync.sandbox import Sandbox, SeedSize
from mapsync.sandbox.faults import Faults
from mapsync.state import open_store
from mapsync.state.base import DeadLetter
from mapsync.sync.report import Report

REPO = Path(__file__).resolve().parents[2]
SEED = SeedSize(avdelinger=2, kunder=6, prosjekter=8)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Gateway:
    """A stand-in Pushgateway on 127.0.0.1: records every request, answers `status`."""

    status: int = 200
    pushes: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            gw.pushes.append({"method": "PUT", "path": self.path, "headers": dict(self.headers),
                              "body": body.decode("utf-8")})
            self.send_response(gw.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    gw.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=gw.server.serve_forever, daemon=True)
    thread.start()
    yield gw
    gw.server.shutdown()
    gw.server.server_close()
    thread.join()


def _workspace(tmp_path: Path) -> Path:
    """A copy of the reference workspace (made once per test)."""
    ws = tmp_path / "ws"
    if not ws.exists():
        ws.mkdir()
        shutil.copy(REPO / "mapsync.yaml", ws / "mapsync.yaml")
        shutil.copytree(REPO / "mappings", ws / "mappings")
    return ws / "mapsync.yaml"


def _apply(tmp_path: Path, sandbox: Sandbox, *args: str) -> tuple[int, str, dict[str, Any] | None]:
    _register_commands()
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    env = sandbox.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db"}
    result = CliRunner().invoke(cli, ["--config", str(_workspace(tmp_path)), "apply", "--no-progress",
                                      "--json-report", str(report), *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    loaded = json.loads(report.read_text(encoding="utf-8")) if report.exists() else None
    return result.exit_code, result.stderr, loaded


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def assert_matches_report(samples: Samples, report: dict[str, Any]) -> None:
    """Every number of the JSON report is the one the metrics carry."""
    for name, flow in report["dataflows"].items():
        assert value(samples, "mapsync_runs_total", dataflow=name, status=flow["status"]) == 1
        for outcome in RECORD_OUTCOMES:
            assert value(samples, "mapsync_records_total", dataflow=name, outcome=outcome) == flow[outcome]
        assert value(samples, "mapsync_run_duration_seconds_count", dataflow=name) == 1
        assert value(samples, "mapsync_run_duration_seconds_sum", dataflow=name) == \
            pytest.approx(flow["duration_seconds"], abs=0.001)
        assert value(samples, "mapsync_conflicts_waiting", dataflow=name) == flow["conflicts_waiting"]
    by_method: dict[tuple[str, str], float] = {}
    for (metric, labels), count in samples.items():
        if metric == "mapsync_requests_total":
            key = (dict(labels)["connection"], dict(labels)["method"])
            by_method[key] = by_method.get(key, 0) + count
    assert by_method == {(c, m): n for c, methods in report["requests"].items() for m, n in methods.items()}


def test_apply_pushes_the_metrics_of_its_run(tmp_path: Path, sandbox: Sandbox, gateway: Gateway) -> None:
    code, stderr, report = _apply(tmp_path, sandbox, "--push-metrics", gateway.url)
    assert code == 0, stderr
    assert report is not None and report["status"] == "ok"
    assert report["total"]["created"] > 0  # a first sync: the numbers compared below are not all zero
    [push] = gateway.pushes
    assert push["path"] == "/metrics/job/mapsync"
    samples = parse(push["body"])
    assert_matches_report(samples, report)
    for name in report["dataflows"]:
        assert value(samples, "mapsync_failed_records", dataflow=name) == 0
        assert value(samples, "mapsync_last_success_timestamp_seconds", dataflow=name) == pytest.approx(
            _timestamp(report["finished_at"]), abs=0.01)
    assert all(dict(labels)["status"] in {"200", "201"} for (metric, labels) in samples
               if metric == "mapsync_requests_total")


def test_answers_other_than_success_are_counted_by_status(make_sandbox: Any, tmp_path: Path,
                                                          gateway: Gateway) -> None:
    sandbox = make_sandbox(seed=SEED, rng_seed=1, faults=Faults(rate_503=0.3, seed=7))
    _, stderr, report = _apply(tmp_path, sandbox, "--push-metrics", gateway.url)
    assert report is not None, stderr
    samples = parse(gateway.pushes[0]["body"])
    statuses = {dict(labels)["status"] for (metric, labels) in samples if metric == "mapsync_requests_total"}
    assert "503" in statuses and "200" in statuses
    assert_matches_report(samples, report)  # every request counted once, retried ones included


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_a_failed_push_is_one_line_and_exit_1_after_a_good_run(tmp_path: Path, sandbox: Sandbox,
                                                               gateway: Gateway) -> None:
    gateway.status = 500
    url = gateway.url.replace("http://", "http://ops:gw-secret-pw@")
    code, stderr, report = _apply(tmp_path, sandbox, "--push-metrics", url)
    assert report is not None and report["status"] == "ok"  # the sync itself went through
    assert code == 1
    lines = [line for line in stderr.splitlines() if "metrics" in line]
    assert lines == [f"error: cannot push metrics to {gateway.url.replace('http://', 'http://ops:***@')}: "
                     "the gateway answered 500 Internal Server Error"]
    assert "gw-secret-pw" not in stderr and "Traceback" not in stderr


def test_credentials_in_the_gateway_url_are_sent_as_basic_auth(gateway: Gateway) -> None:
    metrics = Metrics()
    metrics.push(gateway.url.replace("http://", "http://ops:pa%40ss@"), job="nightly")
    [push] = gateway.pushes
    assert push["path"] == "/metrics/job/nightly"
    assert push["headers"]["Authorization"] == "Basic b3BzOnBhQHNz"  # base64 of ops:pa@ss


def test_an_unreachable_gateway_is_a_mapsync_error(gateway: Gateway) -> None:
    url = gateway.url + "/?token=tok-secret"
    assert gateway.server is not None
    gateway.server.shutdown()
    gateway.server.server_close()  # nobody listens on that port any more
    with pytest.raises(MetricsPushError) as caught:
        Metrics().push(url)
    message = str(caught.value)
    assert message.startswith(f"cannot push metrics to {gateway.url}/?token=***: no answer (")
    assert "tok-secret" not in message and "\n" not in message


@pytest.mark.parametrize("url", ["ftp://gateway:9091", "http://", "http://host:99999"])
def test_a_gateway_url_that_cannot_be_one_is_refused(url: str) -> None:
    with pytest.raises(MetricsPushError, match="cannot push metrics to"):
        Metrics().push(url)


def test_failed_records_are_read_from_the_dead_letter_ledger(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    try:
        for record_id in ("K1", "K2", "K3"):
            store.add_dead_letter(DeadLetter("kunde-customer", "target", record_id, "422: bad org number"))
        report = Report()
        report.dataflow("kunde-customer").counts.failed = 1  # this run failed one; two failed before
        report.dataflow("avdeling-customer").conflicts_waiting = 2
        metrics = Metrics()
        metrics.observe_report(report, store)
        samples = parse(metrics.render()[0].decode())
        assert value(samples, "mapsync_failed_records", dataflow="kunde-customer") == 3
        assert value(samples, "mapsync_failed_records", dataflow="avdeling-customer") == 0
        assert value(samples, "mapsync_conflicts_waiting", dataflow="avdeling-customer") == 2
        assert ("mapsync_last_success_timestamp_seconds", (("dataflow", "kunde-customer"),)) not in samples
        metrics.observe_report(report)  # without the store: the run's own count
        samples = parse(metrics.render()[0].decode())
        assert value(samples, "mapsync_failed_records", dataflow="kunde-customer") == 1
        assert value(samples, "mapsync_runs_total", dataflow="kunde-customer", status="partial") == 2
        assert value(samples, "mapsync_records_total", dataflow="kunde-customer", outcome="failed") == 2
    finally:
        store.close()


def test_a_run_that_took_no_lock_counts_each_expected_dataflow_as_failed() -> None:
    report = Report(errors=["the run lock 'apply:kunde-customer' is held by another run"])
    metrics = Metrics()
    metrics.observe_report(report, expected=["kunde-customer", "prosjekt-project"])
    samples = parse(metrics.render()[0].decode())
    assert value(samples, "mapsync_runs_total", dataflow="kunde-customer", status="failed") == 1
    assert value(samples, "mapsync_runs_total", dataflow="prosjekt-project", status="failed") == 1


def test_requests_of_a_connector_without_statuses_are_counted_as_unknown() -> None:
    report = Report(requests={"plugin": {"GET": 4}, "tidsbanken": {"GET": 3}},
                    request_statuses={"tidsbanken": {"GET": {"200": 2, "error": 1}}})
    metrics = Metrics()
    metrics.observe_report(report)
    samples = parse(metrics.render()[0].decode())
    assert value(samples, "mapsync_requests_total", connection="plugin", method="GET", status="unknown") == 4
    assert value(samples, "mapsync_requests_total", connection="tidsbanken", method="GET", status="200") == 2
    assert value(samples, "mapsync_requests_total", connection="tidsbanken", method="GET", status="error") == 1


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_report(Report(requests={"c": {"GET": 1}}))
    assert "mapsync_requests_total" in first.render()[0].decode()
    assert 'connection="c"' not in second.render()[0].decode()
