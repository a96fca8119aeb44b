"""`make soak`: rounds of random edits on both sides, under injected faults and occasional kills.

    .venv/bin/python -m bench.soak [--rounds 20] [--minutes 12]

Loopback only, bounded in rounds and time. Each round edits random linked records in both emulators
(sometimes the same property on both sides), adds a few new Tidsbanken records (some with a name that
Custompms refuses with 422), then runs `mapsync apply` as a subprocess with 10% of requests failing
(429, 503, dropped connections), killing it with SIGKILL now and then; then one more apply with the faults
off, and checks:
- both systems agree on every linked property (projected through the mapping, references translated),
- no record exists twice (every Custompms record is linked exactly once),
- the dead-letter ledger holds exactly the records that were refused.
Then it runs the scenarios of docs/reliability.md (bench/scenarios.py: short listings, lost answers, stolen
and dropped locks, endless pages, hostile answers, --max-duration, path-like ids), each checked the same way.
It prints its figures and exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.audit import audit
from bench.scenarios import SCENARIOS
from bench.scenarios import run_all as run_scenarios
from mapsync.sandbox import Faults, Sandbox, SeedSize
from mapsync.spec.loader import load_workspace
from mapsync.state import open_store

REPO = Path(__file__).resolve().parent.parent
FAULTS = Faults(rate_429=0.04, rate_503=0.03, rate_drop=0.03, retry_after=0, seed=11)
REFUSED_PREFIX = "Avvist"


@dataclass
class Figures:
    rounds: int = 0
    edits: int = 0
    creates: int = 0
    applies: int = 0
    kills: int = 0
    requests: int = 0
    faults: int = 0
    mismatches: int = 0
    duplicates: int = 0
    ledger_errors: int = 0
    problems: list[str] = field(default_factory=list)


def _refuse(resource: str, body: dict[str, Any]) -> str | None:
    name = body.get("name")
    return "refused by the soak test" if isinstance(name, str) and name.startswith(REFUSED_PREFIX) else None


class Soak:
    def __init__(self, sandbox: Sandbox, folder: Path, rng: random.Random) -> None:
        self.sb = sandbox
        self.folder = folder
        self.rng = rng
        self.state_url = f"sqlite:///{folder / 'state.db'}"
        self.env = {**os.environ, **sandbox.env(), "MAPSYNC_STATE": self.state_url}
        shutil.copy(REPO / "mapsync.yaml", folder / "mapsync.yaml")
        shutil.copytree(REPO / "mappings", folder / "mappings")
        self.workspace = load_workspace(folder / "mapsync.yaml", env=self.env)
        self.refused: set[str] = set()
        self.figures = Figures()
        self.counter = 0

    # -- one round --------------------------------------------------------------------------------

    def round(self) -> None:
        self._edit_both_sides()
        self._add_records()
        self.sb.set_faults(FAULTS)
        self._apply(kill=self.rng.random() < 0.4)
        self._apply(kill=False)
        self.sb.set_faults(Faults())
        self._apply(kill=False)
        self._check()
        self.figures.rounds += 1

    def _edit_both_sides(self) -> None:
        for entity, prop in (("Kunde", "Telefon"), ("Kunde", "Navn"), ("Prosjekt", "Navn"), ("Avdeling", "Navn")):
            records = [r for r in self.sb.tidsbanken.records(entity) if r["Id"] not in self.refused]
            for record in self.rng.sample(records, min(3, len(records))):
                self.sb.tidsbanken.edit(entity, record["Id"], **{prop: f"{record[prop]} t{self._next()}"})
                self.figures.edits += 1
        for resource, prop in (("customers", "phone"), ("customers", "email"), ("projects", "name")):
            records = self.sb.custompms.records(resource)
            for record in self.rng.sample(records, min(3, len(records))):
                self.sb.custompms.edit(resource, record["id"], **{prop: f"pms{self._next()}@x.no"
                                                                    if prop == "email" else f"p{self._next()}"})
                self.figures.edits += 1

    def _add_records(self) -> None:
        for _ in range(2):
            number = self._next()
            refused = self.rng.random() < 0.3
            kunde_id = f"KS{number}"
            name = f"{REFUSED_PREFIX} {number} AS" if refused else f"Soak Kunde {number} AS"
            self.sb.tidsbanken.put("Kunde", {"Id": kunde_id, "Navn": name, "Aktiv": True})
            if refused:
                self.refused.add(kunde_id)
            self.figures.creates += 1
        linked = [k["Id"] for k in self.sb.tidsbanken.records("Kunde") if k["Id"] not in self.refused]
        self.sb.tidsbanken.put("Prosjekt", {"Id": f"PS{self._next()}", "Navn": "Soak prosjekt",
                                            "KundeId": self.rng.choice(linked), "Avsluttet": False})
        self.figures.creates += 1

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def _apply(self, *, kill: bool) -> None:
        before = self.sb.tidsbanken.request_count + self.sb.custompms.request_count
        process = subprocess.Popen([sys.executable, "-m", "mapsync", "apply", "--wait", "30"], cwd=self.folder,
                                   env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.figures.applies += 1
        if kill:
            budget = self.rng.randint(3, 60)
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                sent = self.sb.tidsbanken.request_count + self.sb.custompms.request_count - before
                if sent >= budget:
                    process.send_signal(signal.SIGKILL)
                    self.figures.kills += 1
                    break
                time.sleep(0.002)
        process.wait(timeout=300)
        self.figures.requests += self.sb.tidsbanken.request_count + self.sb.custompms.request_count - before
        self.figures.faults = sum(self.sb.tidsbanken.faults_injected.values()) + sum(
            self.sb.custompms.faults_injected.values())

    # -- the checks -------------------------------------------------------------------------------

    def _check(self) -> None:
        result = audit(self.sb, self.workspace, self.state_url, expected_unsynced=self.refused)
        self.figures.mismatches += result.wrong + result.lost
        self.figures.duplicates += result.duplicated
        self.figures.problems.extend(f"round {self.figures.rounds}: {p}" for p in result.problems)
        store = open_store(self.state_url)
        try:
            failed = {d.record_id for d in store.iter_dead_letters()}
        finally:
            store.close()
        if failed != self.refused:
            self.figures.ledger_errors += len(failed ^ self.refused)
            self.figures.problems.append(f"round {self.figures.rounds}: dead letters {sorted(failed)} but "
                                         f"refused {sorted(self.refused)}")


def main() -> int:
    parser = argparse.ArgumentParser(description="mapsync reliability soak (loopback only)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=12.0, help="stop after this long, whatever the rounds")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-scenarios", action="store_true", help="skip the scenarios of docs/reliability.md")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mapsync-soak-") as folder, \
            Sandbox(seed=SeedSize(avdelinger=4, kunder=40, prosjekter=60), rng_seed=args.seed) as sandbox:
        sandbox.custompms.refuse(_refuse)
        soak = Soak(sandbox, Path(folder), random.Random(args.seed))
        soak._apply(kill=False)  # the initial sync, fault-free
        while soak.figures.rounds < args.rounds and time.monotonic() - started < args.minutes * 60:
            soak.round()
            f = soak.figures
            print(f"round {f.rounds:2}: edits {f.edits}, creates {f.creates}, faults {f.faults}, kills {f.kills}, "
                  f"mismatches {f.mismatches}, duplicates {f.duplicates}, ledger errors {f.ledger_errors}",
                  flush=True)
        figures = soak.figures
    print()
    print(f"rounds {figures.rounds}, edits {figures.edits}, new records {figures.creates}, applies "
          f"{figures.applies}, kills {figures.kills}, requests {figures.requests}, faults injected "
          f"{figures.faults} (429, 503 and dropped connections), mismatches {figures.mismatches}, "
          f"duplicates {figures.duplicates}, "
          f"dead-letter ledger errors {figures.ledger_errors}, in {time.monotonic() - started:.0f} s")
    for problem in figures.problems[:30]:
        print(f"  {problem}")
    clean = not (figures.mismatches or figures.duplicates or figures.ledger_errors)
    if not args.no_scenarios:
        print("\nThe scenarios of docs/reliability.md (python -m bench.scenarios):")
        print("| scenario | runs | runs that exited 1 | lost | duplicated | wrong | note |")
        print("|---|---|---|---|---|---|---|")
        results = run_scenarios(list(SCENARIOS))
        clean = clean and all(r.clean for r in results)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
