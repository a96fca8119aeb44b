"""Issue 13, done when: a system described only by a definition file syncs both ways, end to end.

Ledgerly (tests/thirdparty/ledgerly_emulator.py, on a real socket) is described by
tests/thirdparty/workspace/connectors/ledgerly.yaml and its entity schema, with no Python connector; the
mapping Tidsbanken Kunde <-> Ledgerly Contact is synced with the CLI: validate, apply, apply again (nothing
to do), edits on both sides, and no ping-pong afterwards.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ledgerly_emulator import CLIENT_ID, CLIENT_SECRET, LedgerlyEmulator

from mapsync.cli._app import _register_commands, cli
from mapsync.sandbox import Sandbox, SeedSize

WORKSPACE = Path(__file__).parent / "workspace"
KUNDER = 6
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_register_commands()


@dataclass
class Run:
    exit_code: int
    output: str
    report: dict[str, Any] | None

    def counts(self) -> dict[str, Any]:
        assert self.report is not None, self.output
        return dict(self.report["dataflows"]["kunde-contact"])


@dataclass
class World:
    sandbox: Sandbox
    ledgerly: LedgerlyEmulator
    ws: Path
    runs: int = 0

    def env(self) -> dict[str, str]:
        return self.sandbox.env() | {
            "LEDGERLY_URL": self.ledgerly.url, "LEDGERLY_CLIENT_ID": CLIENT_ID,
            "LEDGERLY_CLIENT_SECRET": CLIENT_SECRET, "MAPSYNC_STATE": f"sqlite:///{self.ws / 'state.db'}",
        }

    def cli(self, *args: str) -> Run:
        result = CliRunner().invoke(cli, ["--config", str(self.ws / "mapsync.yaml"), *args], env=self.env())
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"mapsync {' '.join(args)} raised {result.exception!r}\n{result.output}")
        return Run(result.exit_code, result.output, None)

    def apply(self) -> Run:
        self.runs += 1
        report = self.ws / f"report-{self.runs}.json"
        run = self.cli("apply", "--json-report", str(report))
        run.report = json.loads(report.read_text(encoding="utf-8")) if report.exists() else None
        assert run.exit_code == 0, run.output
        return run

    def writes(self) -> list[tuple[str, str, str]]:
        """Every write of data answered so far, on both systems: (system, method, path). A token request
        (each run fetches its own) writes no data."""
        found = [("tidsbanken", e.method, e.path) for e in self.sandbox.tidsbanken.write_log]
        return found + [("ledgerly", e.method, e.path) for e in self.ledgerly.write_log
                        if not e.path.startswith("/oauth/")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    ws = tmp_path / "ws"
    shutil.copytree(WORKSPACE, ws)
    sandbox = Sandbox(seed=SeedSize(counts={"Avdeling": 1, "Kunde": KUNDER, "Prosjekt": 0}), rng_seed=3).start()
    ledgerly = LedgerlyEmulator()
    ledgerly.start()
    try:
        yield World(sandbox, ledgerly, ws)
    finally:
        ledgerly.stop()
        sandbox.stop()


def test_validate_checks_the_definition_and_the_mapping(world: World) -> None:
    run = world.cli("validate")
    assert run.exit_code == 0, run.output


def test_a_mistake_in_the_definition_is_reported_at_its_line(world: World) -> None:
    definition = world.ws / "connectors" / "ledgerly.yaml"
    text = definition.read_text(encoding="utf-8")
    definition.write_text(text.replace("    scope: contacts", "    scope: contacts\n    body: xml"), encoding="utf-8")
    line = definition.read_text(encoding="utf-8").splitlines().index("    body: xml") + 1
    run = world.cli("validate")
    assert run.exit_code == 2
    assert f"connectors/ledgerly.yaml:{line}:" in run.output and "xml" in run.output, run.output


def test_two_way_sync_with_no_python_connector(world: World) -> None:
    first = world.apply()
    assert first.counts()["created"] == KUNDER
    contacts = {c["name"]: c for c in world.ledgerly.records()}
    kunder = world.sandbox.tidsbanken.records("Kunde")
    assert sorted(contacts) == sorted(k["Navn"] for k in kunder)

    before = world.writes()
    assert world.apply().counts()["created"] == 0
    assert world.writes() == before, "a second run wrote again"

    k1, k2 = kunder[0], kunder[1]
    c2 = contacts[k2["Navn"]]
    world.sandbox.tidsbanken.edit("Kunde", k1["Id"], Navn="Endret i Tidsbanken AS")
    world.ledgerly.edit(c2["id"], phone="+47 22 33 44 55", status="archived")
    world.ledgerly.revoke_tokens()  # the cached token is refused: fetched again, once
    tokens = world.ledgerly.token_requests
    run = world.apply()
    assert run.counts()["updated"] == 2 and run.counts()["conflicts"] == 0
    assert world.ledgerly.token_requests == tokens + 1
    new_writes = list((Counter(world.writes()) - Counter(before)).elements())
    assert ("ledgerly", "PUT", f"/api/v2/contacts/{contacts[k1['Navn']]['id']}") in new_writes
    assert [w for w in new_writes if w[0] == "tidsbanken"] == [("tidsbanken", "PUT", "/prosjekt/Kunde")]

    assert world.ledgerly.get(contacts[k1["Navn"]]["id"])["name"] == "Endret i Tidsbanken AS"  # type: ignore[index]
    k2_now = world.sandbox.tidsbanken.get("Kunde", k2["Id"])
    assert k2_now is not None and (k2_now["Telefon"], k2_now["Aktiv"]) == ("+47 22 33 44 55", False)

    settled = len(world.writes())
    for _ in range(2):  # the writes read back as echoes: nothing flows again
        assert world.apply().counts()["updated"] == 0
    assert len(world.writes()) == settled, world.writes()[settled:]
