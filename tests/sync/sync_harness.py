"""The end-to-end harness: a copied workspace, started emulators, a state store, and the CLI run either
in-process (click's CliRunner) or as a real subprocess (for the kill tests).

The emulators are served in process (each connector's httpx client gets the emulator's `transport()`, no
socket) unless the sandbox was started: tests about the network (dropped connections, trickled answers, TLS,
deadlines) and those that spawn a subprocess start it, with `make_harness(..., socket=True)`.

`Harness` bundles what one test needs:

    h.apply("--full")            -> Run(exit_code, stdout, stderr, report)   (in-process, with --json-report)
    h.plan("--json")             -> Run
    h.spawn_apply()              -> subprocess.Popen of `python -m mapsync apply`
    h.writes()                   -> write requests counted so far on both emulators
    h.store()                    -> the state store (opened once, closed at teardown)
    h.set_mapping(name, key=...) -> edit a top-level key of a copied mapping file
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import CliRunner

from mapsync.cli._app import _register_commands, cli
from mapsync.connectors import create_connector
from mapsync.connectors.base import Connector
from mapsync.sandbox import Sandbox, SeedSize
from mapsync.sandbox._emulator import Emulator
from mapsync.state import StateStore, open_store
from mapsync.sync import runner

REPO = Path(__file__).resolve().parents[2]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SEED = SeedSize(avdelinger=3, kunder=15, prosjekter=30)

_register_commands()

# base_url -> the emulator served in process at that (never dialled) address, while its harness is open
_IN_PROCESS: dict[str, Emulator] = {}
_SERIALS = count(1)


def _connector(name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
               ) -> Connector:
    """The runner's create_connector, with the in-process emulator's transport for its addresses."""
    emulator = _IN_PROCESS.get(str(settings.get("base_url")))
    if transport is None and emulator is not None:
        transport = emulator.transport()
    return create_connector(name, settings, transport=transport)


def _serve_in_process(url: str, emulator: Emulator) -> None:
    # The runner builds its connectors with _connector while any in-process harness is open; every other
    # address (a started sandbox, a real server) is dialled as before.
    _IN_PROCESS[url] = emulator
    runner.create_connector = _connector  # type: ignore[attr-defined]


def _stop_serving(url: str) -> None:
    _IN_PROCESS.pop(url, None)
    if not _IN_PROCESS:
        runner.create_connector = create_connector  # type: ignore[attr-defined]


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def counts(self, dataflow: str | None = None) -> dict[str, Any]:
        assert self.report is not None, "no JSON report was written"
        return self.report["total"] if dataflow is None else self.report["dataflows"][dataflow]


@dataclass
class Harness:
    sb: Sandbox
    ws: Path
    state_url: str
    tmp: Path
    _stores: list[StateStore] = field(default_factory=list)
    _runs: int = 0
    _urls: dict[str, str] = field(default_factory=dict)  # in process: connection -> its address

    def __post_init__(self) -> None:
        if self.sb.tidsbanken.running:
            return
        serial = next(_SERIALS)
        for system, emulator in (("tidsbanken", self.sb.tidsbanken), ("custompms", self.sb.custompms)):
            self._urls[system] = f"http://{system}-{serial}.in-process"
            _serve_in_process(self._urls[system], emulator)

    @property
    def config(self) -> Path:
        return self.ws / "mapsync.yaml"

    @property
    def in_process(self) -> bool:
        return bool(self._urls)

    def env(self) -> dict[str, str]:
        if not self.in_process:
            return self.sb.env() | {"MAPSYNC_STATE": self.state_url}
        tb, pms = self.sb.tidsbanken, self.sb.custompms
        return {"TIDSBANKEN_URL": self._urls["tidsbanken"], "TIDSBANKEN_API_KEY": tb.api_key,
                "TIDSBANKEN_SUBSCRIPTION_KEY": tb.subscription_key, "CUSTOMPMS_URL": self._urls["custompms"],
                "CUSTOMPMS_TOKEN": pms.token, "MAPSYNC_STATE": self.state_url}

    # -- the CLI in-process

    def cli(self, *args: str) -> Run:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], env=self.env())
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"mapsync {' '.join(args)} raised {result.exception!r}\n{result.output}") \
                from result.exception
        return Run(result.exit_code, result.stdout, result.stderr)

    def apply(self, *args: str) -> Run:
        self._runs += 1
        report_path = self.tmp / f"report-{self._runs}.json"
        run = self.cli("apply", "--json-report", str(report_path), *args)
        if report_path.exists():
            run.report = json.loads(report_path.read_text(encoding="utf-8"))
        return run

    def plan(self, *args: str) -> Run:
        return self.cli("plan", *args)

    def converge(self, *args: str, attempts: int = 6) -> list[Run]:
        """apply until it exits 0 (at most `attempts` times); every run's result."""
        runs = []
        for _ in range(attempts):
            runs.append(self.apply(*args))
            if runs[-1].exit_code == 0:
                return runs
        raise AssertionError(f"no clean apply after {attempts} runs; last:\n{runs[-1].output}")

    # -- the CLI as a subprocess

    def spawn_apply(self, *args: str) -> subprocess.Popen[bytes]:
        assert not self.in_process, "a subprocess reaches the emulators on sockets: make_harness(..., socket=True)"
        return subprocess.Popen(
            [sys.executable, "-m", "mapsync", "apply", "--no-progress", *args], cwd=self.ws,
            env=os.environ | self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # -- looking at the emulators and the store

    def writes(self) -> int:
        return sum(n for server in (self.sb.tidsbanken, self.sb.custompms)
                   for (method, _), n in server.requests.items() if method in WRITE_METHODS)

    def store(self) -> StateStore:
        if not self._stores:
            self._stores.append(open_store(self.state_url))
        return self._stores[0]

    def open_another_store(self) -> StateStore:
        self._stores.append(open_store(self.state_url))
        return self._stores[-1]

    def links(self, dataflow: str) -> dict[str, str]:
        return {link.source_id: link.target_id for link in self.store().iter_links(dataflow)}

    def set_mapping(self, dataflow: str, **changes: Any) -> None:
        """Change top-level keys of a copied mapping file (e.g. conflicts="manual")."""
        path = self.ws / "mappings" / f"{dataflow}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data.update(changes)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def set_connection(self, connection: str, **settings: Any) -> None:
        """Change settings of one connection in the copied mapsync.yaml (e.g. overlap=0)."""
        data = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        data["connections"][connection].update(settings)
        self.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def close(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()
        for url in self._urls.values():
            _stop_serving(url)


FLOWS = ("avdeling-customer", "kunde-customer", "prosjekt-project")


def all_links(h: Harness) -> dict[str, dict[str, str]]:
    return {flow: h.links(flow) for flow in FLOWS}


def write_requests(h: Harness) -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for system, server in (("tidsbanken", h.sb.tidsbanken), ("custompms", h.sb.custompms)):
        for (method, path), n in server.requests.items():
            if method in WRITE_METHODS:
                counts[(system, method, path)] += n
    return counts
