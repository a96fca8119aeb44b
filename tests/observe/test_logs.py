"""Structured logs of real `mapsync apply` runs against the emulators: every stderr line of `--log-format json`
is one JSON object, runs and dataflows start and end, every write is logged (property names at info, values
at debug), retries and failed records are logged, and no secret ever reaches the log."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from mapsync.cli._app import _register_commands, cli
from mapsync.connectors.http import HttpClient, HttpSettings
from mapsync.observe import logs
from mapsync.sandbox import Faults, Sandbox, SeedSize

REPO = Path(__file__).parents[2]
TINY_SEED = SeedSize(avdelinger=2, kunder=3, prosjekter=3)
SECRETS = {"tidsbanken_api_key": "tb-key-c0ffee-7781", "tidsbanken_subscription_key": "tb-sub-d00d-5512",
           "custompms_token": "pms-token-beef-9034"}

_register_commands()


@pytest.fixture(autouse=True)
def _logs_left_as_a_library_leaves_them() -> Iterator[None]:
    yield
    logs.unconfigure()


@dataclass
class Logged:
    exit_code: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    report: dict[str, Any]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


def apply_logged(sandbox: Sandbox, tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> Logged:
    """`mapsync [options] apply` on a copy of the reference workspace; stderr's JSON lines parsed."""
    ws = tmp_path / "ws"
    if not ws.exists():
        ws.mkdir()
        shutil.copy(REPO / "mapsync.yaml", ws / "mapsync.yaml")
        shutil.copytree(REPO / "mappings", ws / "mappings")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli, ["--config", str(ws / "mapsync.yaml"), *options, "apply", "--no-progress", "--json-report", str(report)],
        env=sandbox.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db"} | (env or {}))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    # The summary's own `error:` lines stay text; every other line is one JSON object.
    events = [json.loads(line) for line in result.stderr.splitlines() if not line.startswith("error: ")]
    return Logged(result.exit_code, result.stdout, result.stderr, events, json.loads(report.read_text()))


@pytest.fixture
def tiny(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(seed=TINY_SEED, rng_seed=1)


def test_json_logs_start_and_end_every_run_and_dataflow_and_name_what_each_write_changed(
        tiny: Sandbox, tmp_path: Path) -> None:
    run = apply_logged(tiny, tmp_path, "--log-format", "json")

    assert run.exit_code == 0, run.stderr
    run_id = run.report["run_id"]
    assert all(e["run_id"] == run_id and e["timestamp"] and e["level"] for e in run.events)
    first, last = run.events[0], run.events[-1]
    assert (first["event"], last["event"]) == ("run.start", "run.end")
    assert "dataflow" not in first and "dataflow" not in last
    assert last["status"] == "ok" and last["counts"] == run.report["total"] and last["duration_ms"] > 0
    dataflows = list(run.report["dataflows"])
    assert first["dataflows"] == dataflows
    assert [e["dataflow"] for e in run.named("run.start")[1:]] == dataflows
    ends = {e["dataflow"]: e for e in run.named("run.end") if "dataflow" in e}
    for name, counts in run.report["dataflows"].items():
        assert ends[name]["status"] == counts["status"]
        assert ends[name]["counts"]["created"] == counts["created"]

    writes = run.named("record.write")
    assert len(writes) == run.report["total"]["created"] > 0
    assert {(w["kind"], w["side"]) for w in writes} == {("create", "target")}
    kunde = next(w for w in writes if w["dataflow"] == "kunde-customer")
    assert kunde["source_id"] and kunde["target_id"] and "name" in kunde["changed"]
    assert all("values" not in w for w in writes)  # names only at info
    assert not run.named("http.request")  # only with -v


def test_debug_logs_the_old_and_new_values_of_an_update(tiny: Sandbox, tmp_path: Path) -> None:
    assert apply_logged(tiny, tmp_path).exit_code == 0
    kunde = tiny.tidsbanken.records("Kunde")[0]
    tiny.tidsbanken.edit("Kunde", kunde["Id"], Navn="Omdøpt Kunde AS")

    run = apply_logged(tiny, tmp_path, "--log-format", "json", "--log-level", "debug")

    update = [w for w in run.named("record.write") if w["dataflow"] == "kunde-customer"]
    assert len(update) == 1, run.events
    assert update[0]["kind"] == "update" and update[0]["side"] == "target"
    assert update[0]["source_id"] == kunde["Id"] and update[0]["changed"] == ["name"]
    assert update[0]["values"] == {"name": {"old": kunde["Navn"], "new": "Omdøpt Kunde AS"}}
    assert update[0]["level"] == "INFO"


def test_a_refused_record_is_logged_as_failed_with_its_reason(tiny: Sandbox, tmp_path: Path) -> None:
    tiny.custompms.refuse(lambda name, body: "not today" if name == "customers" and body.get("kind") == "customer"
                          else None)

    run = apply_logged(tiny, tmp_path, "--log-format", "json")

    assert run.exit_code == 1
    failed = run.named("record.failed")
    assert len(failed) == run.report["total"]["failed"] == TINY_SEED.kunder
    assert {(f["dataflow"], f["kind"], f["status"], f["level"]) for f in failed} == {
        ("kunde-customer", "fail", 422, "WARNING")}
    assert all("not today" in f["reason"] and f["source_id"] for f in failed)
    end = next(e for e in run.named("run.end") if e.get("dataflow") == "kunde-customer")
    assert (end["status"], end["level"]) == ("partial", "WARNING") and end["errors"]


def test_every_retry_is_logged_and_no_secret_is_logged_even_at_debug_with_v(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = make_sandbox(seed=TINY_SEED, rng_seed=1, faults=Faults(rate_503=0.25, seed=5), **SECRETS)

    run = apply_logged(sandbox, tmp_path, "--log-format", "json", "--log-level", "debug", "-v")

    assert run.exit_code == 0, run.stderr
    retries = run.named("http.retry")
    injected = sum(sandbox.tidsbanken.faults_injected.values()) + sum(sandbox.custompms.faults_injected.values())
    assert len(retries) == injected > 0
    for retry in retries:
        assert retry["status"] == 503 and retry["attempt"] >= 1 and retry["delay_ms"] >= 0
        assert retry["connection"] in ("tidsbanken", "custompms") and retry["method"] and retry["path"]
        assert retry["run_id"] == run.report["run_id"] and retry["dataflow"]
    requests = run.named("http.request")
    assert len(requests) == sandbox.tidsbanken.request_count + sandbox.custompms.request_count
    assert {r["status"] for r in requests} >= {200, 201, 503}
    assert all(r["duration_ms"] >= 0 and r["path"].startswith("/") for r in requests)
    assert any("values" in w for w in run.named("record.write"))  # debug really was on
    for secret in SECRETS.values():
        assert secret not in run.stderr and secret not in run.stdout


def test_text_logs_are_quiet_by_default_and_name_the_event_when_asked(tiny: Sandbox, tmp_path: Path) -> None:
    quiet = apply_logged(tiny, tmp_path)
    assert quiet.exit_code == 0 and quiet.stderr == ""  # a person at a terminal: the summary table only
    assert "created" in quiet.stdout

    kunde = tiny.tidsbanken.records("Kunde")[0]
    tiny.tidsbanken.edit("Kunde", kunde["Id"], Navn="Tekst Kunde AS")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "ws" / "mapsync.yaml"), "--log-level", "info",
                                      "apply", "--no-progress"],
                                env=tiny.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stderr.splitlines() if " record.write " in line)
    assert " info record.write " in line and f"source_id={kunde['Id']}" in line and 'changed=["name"]' in line
    assert "Tekst Kunde AS" not in result.stderr


def test_the_environment_chooses_format_and_level(tiny: Sandbox, tmp_path: Path) -> None:
    run = apply_logged(tiny, tmp_path, env={"MAPSYNC_LOG_FORMAT": "json", "MAPSYNC_LOG_LEVEL": "warning"})
    assert run.exit_code == 0
    assert run.events == []  # all went well: nothing at warning

    tiny.tidsbanken.edit("Kunde", tiny.tidsbanken.records("Kunde")[0]["Id"], Navn="Miljø Kunde AS")
    run = apply_logged(tiny, tmp_path, env={"MAPSYNC_LOG_FORMAT": "json", "MAPSYNC_LOG_LEVEL": "debug"})
    assert [w["values"]["name"]["new"] for w in run.named("record.write")] == ["Miljø Kunde AS"]


def test_a_secret_in_a_query_string_is_masked_in_request_and_retry_lines(capsys: pytest.CaptureFixture[str]) -> None:
    answers: Iterator[httpx.Response | Exception] = iter([
        httpx.ConnectError("refused by http://demo.invalid/items?token=echoed-secret-3456"),
        httpx.Response(503), httpx.Response(200, json={})])

    def answer(request: httpx.Request) -> httpx.Response:
        step = next(answers)
        if isinstance(step, Exception):
            raise step
        return step

    client = HttpClient("demo", "http://demo.invalid", headers={"X-Api-Key": "header-secret-1234"},
                        settings=HttpSettings(max_retries=2), secrets=["path-secret-5678"],
                        transport=httpx.MockTransport(answer), sleep=lambda _: None)
    logs.configure("json", "debug", verbose=True)

    with client:
        client.request("GET", "/items/path-secret-5678", params={"api_key": "query-secret-9012", "page": 2})

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["http.request", "http.retry"] * 2 + ["http.request"]
    assert [line.get("status") for line in lines] == [None, None, 503, 503, 200]
    assert (lines[0]["error"], lines[1]["attempt"], lines[3]["attempt"]) == ("error", 1, 2)
    assert lines[1]["error"].startswith("ConnectError: refused by http://demo.invalid/items?token=***")
    assert lines[0]["path"] == "/items/***?api_key=***&page=2"
    assert lines[1]["path"] == "/items/***"
    assert "secret" not in json.dumps(lines).replace("***", "")


def test_a_library_prints_nothing_until_the_cli_configures_it(capsys: pytest.CaptureFixture[str]) -> None:
    logs.unconfigure()
    with logs.bound(run_id="r1", dataflow="d1"):
        logs.RECORD_LOG.warning("record.failed", extra={"event": "record.failed"})
        assert logs.bound_fields() == {"run_id": "r1", "dataflow": "d1"}
    assert logs.bound_fields() == {}
    assert capsys.readouterr().err == ""


def test_a_write_logged_by_nobody_builds_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    from mapsync.sync.actions import Action, ActionKind
    from mapsync.sync.executor import Outcome

    monkeypatch.setattr(logs, "_record_written", lambda _: pytest.fail("built for nobody"))
    before = logs.RECORD_LOG.level
    logs.RECORD_LOG.setLevel("WARNING")
    try:
        logs.record_outcome(Outcome(Action(ActionKind.CREATE, "kunde-customer", "K1")), failed=False)
    finally:
        logs.RECORD_LOG.setLevel(before)
