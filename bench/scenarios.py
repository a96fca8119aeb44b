"""The reliability scenarios of docs/reliability.md, each recreated end to end and measured.

    .venv/bin/python -m bench.scenarios [--only NAME ...]

Each scenario starts seeded emulators and a copy of the reference workspace, makes the operator's
infrastructure misbehave the way the scenario says (a short listing, a lost answer, a stolen lock, a
hostile answer, ...), runs `mapsync apply` as a subprocess as cron would, then lets the fault go and runs
until the sync converges. It prints one row per scenario: runs, runs that exited 1, and records lost,
duplicated and wrong after convergence (bench/audit.py). The faulty runs are expected to exit 1 where
the scenario says they must stop; what must never happen is a lost, duplicated or wrong record.
`make soak` runs these after the fault-and-kill rounds; it exits 1 when any scenario is not clean.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bench.audit import Audit, audit
from mapsync.sandbox import Faults, Sandbox, SeedSize
from mapsync.spec.loader import load_workspace
from mapsync.state import open_store

REPO = Path(__file__).resolve().parent.parent
SEED = SeedSize(avdelinger=3, kunder=15, prosjekter=33)
POSTGRES = os.environ.get("MAPSYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
FLOWS = ("avdeling-customer", "kunde-customer", "prosjekt-project")


@dataclass
class Result:
    name: str
    runs: int = 0
    exited_1: int = 0
    audit: Audit = field(default_factory=Audit)
    note: str = ""

    @property
    def clean(self) -> bool:
        return self.audit.clean and not self.note.startswith("FAILED")


class Workspace:
    """A copied reference workspace over started emulators; `apply` runs the real CLI in a subprocess."""

    def __init__(self, folder: Path, sandbox: Sandbox, state_url: str, result: Result) -> None:
        self.folder, self.sb, self.state_url, self.result = folder, sandbox, state_url, result
        shutil.copy(REPO / "mapsync.yaml", folder / "mapsync.yaml")
        shutil.copytree(REPO / "mappings", folder / "mappings")
        self.env = {**os.environ, **sandbox.env(), "MAPSYNC_STATE": state_url}
        self.connection("tidsbanken", rate_limit=1000)
        self.connection("custompms", rate_limit=1000)

    def connection(self, name: str, **settings: Any) -> None:
        path = self.folder / "mapsync.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["connections"][name].update(settings)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "mapsync", "apply", "--no-progress", *args], cwd=self.folder,
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def apply(self, *args: str) -> int:
        process = self.spawn(*args)
        _, err = process.communicate(timeout=600)
        return self.count(process.returncode, err.decode())

    def count(self, code: int, err: str) -> int:
        self.result.runs += 1
        if code == 1:
            self.result.exited_1 += 1
        elif code != 0:
            self.result.note = f"FAILED: exit {code}: {err.strip()[-300:]}"
        if "Traceback" in err or "internal error" in err:
            self.result.note = f"FAILED: {err.strip()[-300:]}"
        return code

    def converge(self, attempts: int = 4) -> None:
        self.sb.set_faults(Faults())
        for _ in range(attempts):
            if self.apply("--full") == 0:
                return
        self.result.note = f"FAILED: no clean run after {attempts} attempts"

    def writes(self) -> int:
        return sum(n for server in (self.sb.tidsbanken, self.sb.custompms)
                   for (method, _), n in server.requests.items() if method != "GET")

    def audit(self, expected_unsynced: tuple[str, ...] = ()) -> None:
        workspace = load_workspace(self.folder / "mapsync.yaml", env=self.env)
        self.result.audit = audit(self.sb, workspace, self.state_url, expected_unsynced=expected_unsynced)


# -- the scenarios -------------------------------------------------------------------------------------


def short_listing(ws: Workspace) -> None:
    """A --full listing misses 9% of the Prosjekter once, then lists them again."""
    ws.apply()
    ws.sb.tidsbanken.hidden = {p["Id"] for p in ws.sb.tidsbanken.records("Prosjekt")[:3]}
    ws.apply("--full")
    ws.sb.tidsbanken.hidden = set()
    ws.converge()


def creeping_short_listings(ws: Workspace) -> None:
    """Six --full runs, each missing another 9% of the Prosjekter: the guard must stop the erosion."""
    ws.apply()
    prosjekter = [p["Id"] for p in ws.sb.tidsbanken.records("Prosjekt")]
    for run in range(1, 7):
        ws.sb.tidsbanken.hidden = set(prosjekter[:3 * run])
        ws.apply("--full")
    ws.result.note = f"{len(prosjekter) - len(_link_map(ws, 'prosjekt-project'))} of {len(prosjekter)} links removed"
    ws.sb.tidsbanken.hidden = set()
    ws.converge()


def lost_answers(ws: Workspace) -> None:
    """10% of writes are stored by the server but their answer is lost; runs must still end clean."""
    ws.apply()
    for seed in range(1, 7):
        for kunde in ws.sb.tidsbanken.records("Kunde")[:8]:
            ws.sb.tidsbanken.edit("Kunde", kunde["Id"], Telefon=f"9{seed}{kunde['Id'][-5:]}")
        ws.sb.set_faults(Faults(rate_drop_after_write=0.1, retry_after=0, seed=seed))
        ws.apply()
    ws.converge()


def killed_runs(ws: Workspace) -> None:
    """SIGKILL during the initial sync, at several points, then a rerun."""
    ws.sb.set_faults(Faults(latency=0.005))
    for budget in (5, 15, 30):
        before = ws.writes()
        process = ws.spawn()
        while process.poll() is None and ws.writes() - before < budget:
            time.sleep(0.002)
        process.kill()
        process.communicate()
        ws.result.runs += 1
    ws.converge()


def stolen_sqlite_lock(ws: Workspace) -> None:
    """Another process takes the run's locks over as stale while it runs: it must stop writing."""
    from mapsync.state.sqlite import SqliteStore

    ws.sb.set_faults(Faults(latency=0.02))
    process = ws.spawn()
    _wait_for_writes(ws, process, 3)
    with SqliteStore.open(ws.state_url, stale_after=0) as taker, ExitStack() as held:
        for flow in FLOWS:
            held.enter_context(taker.lock(f"apply:{flow}"))
        _, err = process.communicate(timeout=120)
    ws.count(process.returncode, err.decode())
    ws.converge()


def dropped_postgres_lock(ws: Workspace) -> None:
    """The PostgreSQL connection holding the run's lock is terminated; a second run takes the lock."""
    ws.sb.set_faults(Faults(latency=0.05))
    process = ws.spawn()
    _wait_for_writes(ws, process, 3)
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name LIKE %s", (f"mapsync lock: pid {process.pid} %",))
    second = ws.spawn("--wait", "60")
    _, err = process.communicate(timeout=120)
    ws.count(process.returncode, err.decode())
    _, err2 = second.communicate(timeout=300)
    ws.count(second.returncode, err2.decode())
    ws.converge()


def endless_pages(ws: Workspace) -> None:
    """Tidsbanken brings newer Prosjekter on every page, Custompms a fresh cursor every time."""
    ws.apply()
    ws.connection("tidsbanken", page_size=5, max_pages=10)
    ws.connection("custompms", page_size=5, max_pages=10)
    ws.sb.tidsbanken.endless_paging = {"Prosjekt"}
    ws.apply("--full")
    ws.sb.tidsbanken.endless_paging = set()
    ws.sb.custompms.endless_paging = {"projects"}
    ws.apply("--full")
    ws.sb.custompms.endless_paging = set()
    ws.connection("tidsbanken", page_size=100, max_pages=100000)
    ws.connection("custompms", page_size=100, max_pages=100000)
    ws.converge()


def hostile_answers(ws: Workspace) -> None:
    """A trickled body, a gzip bomb, JSON nested 100,000 deep and a redirect, each on one listing."""
    ws.connection("tidsbanken", request_deadline=1, max_answer_bytes=1 << 20, max_retries=0)
    for faults in (Faults(rate_trickle=1.0, trickle_seconds=0.3), Faults(rate_gzip_bomb=1.0),
                   Faults(rate_deep_json=1.0), Faults(rate_redirect=1.0)):
        ws.sb.tidsbanken.faults = Faults(**{**vars(faults), "paths": ("/ansatt/avdeling",)})
        ws.apply("--full")
    ws.connection("tidsbanken", request_deadline=120, max_answer_bytes=64 << 20, max_retries=5)
    ws.converge()


def max_duration(ws: Workspace) -> None:
    """A run stopped by --max-duration part way through its creates."""
    ws.sb.set_faults(Faults(latency=0.1))
    ws.apply("--max-duration", "1")
    ws.converge()


def path_like_ids(ws: Workspace) -> None:
    """Avdelinger whose Id is `.` or `..`: they fail alone, nothing is written to a collection URL."""
    for record_id in (".", ".."):
        ws.sb.tidsbanken.put("Avdeling", {"Id": record_id, "Navn": f"Avdeling {record_id}", "Postnr": "0150"})
    ws.apply()
    links = _link_map(ws, "avdeling-customer")
    for source_id in links:  # edited in Custompms: each edit flows back as PATCH /ansatt/Avdeling/{Id}
        ws.sb.custompms.edit("customers", links[source_id], name=f"Ny avdeling {source_id}")
    ws.apply()
    ws.apply()
    collection_writes = [key for key in ws.sb.tidsbanken.requests if key[0] != "GET" and key[1].count("/") < 3]
    if collection_writes:
        ws.result.note = f"FAILED: writes to collections {collection_writes}"


SCENARIOS: dict[str, tuple[Callable[[Workspace], None], bool, tuple[str, ...]]] = {
    # name: (scenario, needs PostgreSQL, source ids expected to stay unsynced)
    "short-listing": (short_listing, False, ()),
    "creeping-short-listings": (creeping_short_listings, False, ()),
    "lost-answers": (lost_answers, False, ()),
    "killed-runs": (killed_runs, False, ()),
    "stolen-sqlite-lock": (stolen_sqlite_lock, False, ()),
    "dropped-postgres-lock": (dropped_postgres_lock, True, ()),
    "endless-pages": (endless_pages, False, ()),
    "hostile-answers": (hostile_answers, False, ()),
    "max-duration": (max_duration, False, ()),
    "path-like-ids": (path_like_ids, False, (".", "..")),
}


def _link_map(ws: Workspace, flow: str) -> dict[str, str]:
    store = open_store(ws.state_url)
    try:
        return {link.source_id: link.target_id for link in store.iter_links(flow)}
    finally:
        store.close()


def _wait_for_writes(ws: Workspace, process: subprocess.Popen[bytes], count: int) -> None:
    deadline = time.monotonic() + 60
    while ws.writes() < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _postgres_url(folder: Path) -> tuple[str, Callable[[], None]]:
    schema = f"soak_{os.getpid()}_{folder.name[-8:].lower().replace('-', '_')}"
    url = f"{POSTGRES}?schema={schema}"

    def drop() -> None:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return url, drop


def run_scenario(name: str) -> Result:
    scenario, needs_postgres, expected_unlinked = SCENARIOS[name]
    result = Result(name)
    with tempfile.TemporaryDirectory(prefix=f"mapsync-{name}-") as tmp, Sandbox(seed=SEED, rng_seed=3) as sandbox:
        folder = Path(tmp)
        cleanup: Callable[[], None] = lambda: None  # noqa: E731
        state_url = f"sqlite:///{folder / 'state' / 'state.db'}"
        if needs_postgres:
            state_url, cleanup = _postgres_url(folder)
        try:
            (folder / "ws").mkdir()
            ws = Workspace(folder / "ws", sandbox, state_url, result)
            scenario(ws)
            ws.audit(expected_unlinked)
        finally:
            cleanup()
    return result


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def run_all(names: list[str]) -> list[Result]:
    results = []
    have_postgres = postgres_reachable()
    for name in names:
        if SCENARIOS[name][1] and not have_postgres:
            results.append(Result(name, note=f"skipped: PostgreSQL not reachable at {POSTGRES}"))
            continue
        started = time.monotonic()
        result = run_scenario(name)
        result.note = (result.note + f" ({time.monotonic() - started:.0f} s)").strip()
        print(_row(result), flush=True)
        results.append(result)
    return results


def _row(r: Result) -> str:
    return (f"| {r.name} | {r.runs} | {r.exited_1} | {r.audit.lost} | {r.audit.duplicated} | {r.audit.wrong} "
            f"| {r.note} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mapsync reliability scenarios (loopback only)")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run just these")
    args = parser.parse_args(argv)
    print("| scenario | runs | runs that exited 1 | lost | duplicated | wrong | note |")
    print("|---|---|---|---|---|---|---|")
    results = run_all(args.only or list(SCENARIOS))
    for result in results:
        for problem in result.audit.problems[:10]:
            print(f"  {result.name}: {problem}")
    return 0 if all(r.clean for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
