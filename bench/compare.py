"""mapsync against a hand-written one-way client (bench/client.py), alternately, on the same data.

    .venv/bin/python -m bench.compare                        # 10,000 records, a few minutes on 2 cores
    .venv/bin/python -m bench.compare --sizes 10000 100000   # the full comparison (peak memory 10k -> 100k)
    .venv/bin/python -m bench.compare --profile 10000        # cProfile of mapsync's initial sync, every thread

A child process serves two identical pairs of emulators (one pair per tool, 20 ms latency per request),
seeded with the same records, in two conditions: change times spread out over three years, and loaded in
bulk (every record's change time within one minute, as after an import). In each condition both tools run
the same five steps, one after the other at each step (who goes first alternates): the initial sync, a
rerun with nothing changed, the rerun after that, 1% of Kunder and Prosjekter changed, 5% changed. Each
run is a subprocess of its own (`--worker`), measured the same way for both tools: wall time and process
CPU around the sync, peak resident memory of the process; requests are counted by method at the
emulators. After every step both Custompms emulators must hold the same records (`same records`).
`run()` returns the figures, `markdown()` the section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.sync import _workspace

LATENCY = 0.020
CONCURRENCY = 16
PAGE_SIZE = 500
AVDELINGER = 20
TOOLS = ("client", "mapsync")
CONDITIONS = ("spread", "bulk")
STEPS: tuple[tuple[str, float], ...] = (
    ("initial", 0.0), ("unchanged", 0.0), ("settled", 0.0), ("1% changed", 0.01), ("5% changed", 0.05))
# What each tool lists in a run: the client its three sources; mapsync both sides of its three dataflows.
LISTINGS = {
    "client": (("tidsbanken", "Avdeling"), ("tidsbanken", "Kunde"), ("tidsbanken", "Prosjekt")),
    "mapsync": (("tidsbanken", "Avdeling"), ("tidsbanken", "Kunde"), ("tidsbanken", "Prosjekt"),
                ("custompms", "customers"), ("custompms", "customers"), ("custompms", "projects")),
}
REPO = Path(__file__).resolve().parent.parent


# -- the emulators, in a child process ------------------------------------------------------------------


def _restamp(records: list[dict[str, Any]], stamps: list[int], utc: bool) -> None:
    from mapsync.sandbox._time import format_utc_millis
    from mapsync.sandbox.seed import oslo_millis

    for record, micros in zip(records, stamps, strict=True):
        record["SistEndretDato"] = format_utc_millis(micros) if utc else oslo_millis(micros)
        record["OpprettetDato"] = min(record["OpprettetDato"], record["SistEndretDato"])


def _seed_data(records: int, condition: str) -> dict[str, list[dict[str, Any]]]:
    """The seed records, restamped: spread (distinct instants over three years) or bulk (within a minute)."""
    from mapsync.sandbox.seed import SEED_END, SEED_START, SeedSize, generate

    kunder = (records - AVDELINGER) // 3
    data = generate(SeedSize(avdelinger=AVDELINGER, kunder=kunder, prosjekter=records - AVDELINGER - kunder), 1)
    entities = {"Avdeling": data.avdelinger, "Kunde": data.kunder, "Prosjekt": data.prosjekter}
    rng = random.Random(3)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    for name, rows in entities.items():
        if condition == "spread":
            step = (SEED_END - SEED_START) // max(1, len(rows)) // 1000 * 1000
            stamps = [SEED_START + i * step for i in rng.sample(range(len(rows)), len(rows))]
        else:  # an import ten minutes ago that took a minute
            stamps = [(now_ms - 600_000 + int(rng.random() * 60_000)) * 1000 for _ in rows]
        _restamp(rows, stamps, utc=name == "Avdeling")
    return entities


def _micros(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1_000_000)


class _Emulators:
    """One Sandbox per tool, the same records in each; what the parent asks of them."""

    def __init__(self, records: int, condition: str, latency: float) -> None:
        from mapsync.sandbox import Faults, Sandbox

        data = _seed_data(records, condition)
        self.sandboxes = {tool: Sandbox(faults=Faults(latency=latency)).start() for tool in TOOLS}
        for sandbox in self.sandboxes.values():
            for entity, rows in data.items():
                sandbox.tidsbanken.load(entity, rows)
        self.run_start: dict[str, int] = {}
        self.since: dict[str, int | None] = {}

    def stop(self) -> None:
        for sandbox in self.sandboxes.values():
            sandbox.stop()

    def mark(self, tool: str) -> None:
        """A run of `tool` begins: its bound counts what changed since its previous run began."""
        now = int(time.time() * 1_000_000)
        self.since[tool] = self.run_start.get(tool)
        self.run_start[tool] = now
        for server in (self.sandboxes[tool].tidsbanken, self.sandboxes[tool].custompms):
            server.reset_counts()

    def counts(self, tool: str) -> dict[str, Any]:
        sandbox = self.sandboxes[tool]
        methods: dict[str, int] = {}
        for server in (sandbox.tidsbanken, sandbox.custompms):
            for (method, _path), n in server.requests.items():
                methods[method] = methods.get(method, 0) + n
        return {"methods": methods, "get_bound": self._listing_pages(tool)}

    def _listing_pages(self, tool: str) -> int:
        """Pages needed to list what changed since the tool's previous run began (its own writes too)."""
        sandbox, since = self.sandboxes[tool], self.since.get(tool)
        pages = 0
        for system, entity in LISTINGS[tool]:
            if system == "tidsbanken":
                stamps = [r["SistEndretDato"] for r in sandbox.tidsbanken.records(entity)]
            else:
                stamps = [r["updated_at"] for r in sandbox.custompms.records(entity)]
            changed = sum(1 for s in stamps if since is None or _micros(s) >= since)
            pages += changed // PAGE_SIZE + 1
        return pages

    def edit(self, share: float, seed: int) -> int:
        changed = 0
        for sandbox in self.sandboxes.values():
            rng, changed = random.Random(seed), 0
            for entity in ("Kunde", "Prosjekt"):
                records = sandbox.tidsbanken.records(entity)
                for record in rng.sample(records, max(1, int(len(records) * share))):
                    sandbox.tidsbanken.edit(entity, record["Id"], Navn=record["Navn"] + f" (endret {seed})")
                    changed += 1
        return changed

    def fingerprints(self) -> dict[str, str]:
        return {tool: _fingerprint(sandbox) for tool, sandbox in self.sandboxes.items()}


def _fingerprint(sandbox: Any) -> str:
    """The Custompms content, without server ids and stamps; references read as the content they name."""
    import hashlib

    server_fields = {"id", "version", "created_at", "updated_at"}
    customers = {c["id"]: json.dumps({k: v for k, v in c.items() if k not in server_fields}, sort_keys=True)
                 for c in sandbox.custompms.records("customers")}
    projects = []
    for project in sandbox.custompms.records("projects"):
        body = {k: v for k, v in project.items() if k not in server_fields}
        for ref in ("customer_id", "department_id"):
            body[ref] = customers.get(body[ref]) if body[ref] else None
        projects.append(json.dumps(body, sort_keys=True))
    content = "\n".join([*sorted(customers.values()), *sorted(projects)])
    return hashlib.sha256(content.encode()).hexdigest()


def _serve(records: int, condition: str, latency: float, pipe: Connection) -> None:
    emulators = _Emulators(records, condition, latency)
    try:
        pipe.send({tool: sandbox.env() for tool, sandbox in emulators.sandboxes.items()})
        while True:
            command, *args = pipe.recv()
            if command == "stop":
                return
            pipe.send(getattr(emulators, command)(*args))
    finally:
        emulators.stop()


# -- one run of one tool, in a subprocess ----------------------------------------------------------------


def _worker(tool: str, folder: Path) -> dict[str, Any]:
    """Runs in `python -m bench.compare --worker`: one sync, measured the same way for both tools."""
    if tool == "client":
        from bench.client import ClientSettings, sync

        settings = ClientSettings.from_env(json.loads((folder / "client.json").read_text()),
                                           folder / "client.db", concurrency=CONCURRENCY, page_size=PAGE_SIZE)
        wall, cpu = time.perf_counter(), time.process_time()
        sync(settings)
    else:
        from mapsync.spec.loader import load_workspace
        from mapsync.sync.runner import SyncRun

        workspace = load_workspace(folder / "mapsync.yaml", env={})
        wall, cpu = time.perf_counter(), time.process_time()
        with SyncRun(workspace) as run:
            report = run.apply()
        if report.status != "ok":
            raise RuntimeError(f"mapsync run ended {report.status}: {report.errors}")
    return {"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_tool(tool: str, folder: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.compare", "--worker", tool, str(folder)], cwd=REPO,
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {tool} run failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the comparison --------------------------------------------------------------------------------------


def _prepare(folders: dict[str, Path], envs: dict[str, dict[str, str]], state: str | None) -> None:
    folders["client"].mkdir()
    (folders["client"] / "client.json").write_text(json.dumps(envs["client"]))
    _workspace(folders["mapsync"], envs["mapsync"], CONCURRENCY, state)


def _step(tool: str, folder: Path, pipe: Connection) -> dict[str, Any]:
    pipe.send(("mark", tool))
    pipe.recv()
    result = _run_tool(tool, folder)
    pipe.send(("counts", tool))
    counts: dict[str, Any] = pipe.recv()
    return result | counts


def run_condition(records: int, condition: str, latency: float = LATENCY, state: str | None = None
                  ) -> list[dict[str, Any]]:
    """The five steps of one condition; per step both tools' figures and whether they hold the same records."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(records, condition, latency, child), daemon=True)
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        envs = parent.recv()
        with tempfile.TemporaryDirectory(prefix="mapsync-compare-") as tmp:
            folders = {tool: Path(tmp) / tool for tool in TOOLS}
            _prepare(folders, envs, state)
            for number, (name, share) in enumerate(STEPS):
                changed = 0
                if share:
                    parent.send(("edit", share, number))
                    changed = parent.recv()
                order = TOOLS if number % 2 == 0 else TOOLS[::-1]  # alternate who goes first
                row: dict[str, Any] = {"step": name, "changed": changed}
                for tool in order:
                    row[tool] = _step(tool, folders[tool], parent)
                parent.send(("fingerprints",))
                prints = parent.recv()
                row["same_records"] = prints["client"] == prints["mapsync"]
                rows.append(row)
                print(f"  {records} {condition:6} {name:11} " + _progress(row), flush=True)
    finally:
        parent.send(("stop",))
        server.join(30)
        if server.is_alive():
            server.terminate()
    return rows


def _progress(row: dict[str, Any]) -> str:
    return " ".join(f"{tool} {row[tool]['seconds']:.2f} s" for tool in TOOLS) + f" same={row['same_records']}"


def run(sizes: tuple[int, ...] = (10_000,), conditions: tuple[str, ...] = CONDITIONS, postgres: str | None = None
        ) -> dict[str, Any]:
    """Both tools at each size and condition; mapsync's state in SQLite, or in a fresh schema of the
    PostgreSQL server `postgres` names (the client keeps its SQLite file of id pairs either way)."""
    results: dict[str, Any] = {"sizes": {}}
    for records in sizes:
        results["sizes"][records] = {condition: _with_state(records, condition, postgres) for condition in conditions}
    results["machine"] = f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end of the run"
    return results


def _with_state(records: int, condition: str, postgres: str | None) -> list[dict[str, Any]]:
    if postgres is None:
        return run_condition(records, condition)
    import uuid

    import psycopg

    schema = f"compare_{uuid.uuid4().hex[:12]}"
    try:
        return run_condition(records, condition, state=f"{postgres}?schema={schema}")
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- the report ------------------------------------------------------------------------------------------


def _ratio(row: dict[str, Any], key: str) -> float:
    return float(row["mapsync"][key]) / max(float(row["client"][key]), 1e-9)


def _methods(methods: dict[str, int]) -> str:
    return ", ".join(f"{m} {methods.get(m, 0)}" for m in ("GET", "POST", "PUT", "PATCH") if methods.get(m))


def _verdict(met: bool) -> str:
    return "yes" if met else "**no**"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| run | changed | client s | mapsync s | time ratio (target) | CPU ratio (target) | "
             "client requests | mapsync requests | mapsync GETs / listing pages | peak MB client / mapsync | "
             "same records |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        initial = row["step"] == "initial"
        time_ratio, cpu_ratio = _ratio(row, "seconds"), _ratio(row, "cpu")
        time_target, cpu_target = (1.0, 1.1) if initial else (1.5, None)
        gets, bound = row["mapsync"]["methods"].get("GET", 0), row["mapsync"]["get_bound"]
        cpu_cell = f"{cpu_ratio:.3f}" + (f" (<= {cpu_target}: {_verdict(cpu_ratio <= cpu_target)})"
                                         if cpu_target else "")
        lines.append(
            f"| {row['step']} | {row['changed']} | {row['client']['seconds']:.2f} | {row['mapsync']['seconds']:.2f} "
            f"| {time_ratio:.3f} (<= {time_target}: {_verdict(time_ratio <= time_target)}) | {cpu_cell} "
            f"| {_methods(row['client']['methods'])} | {_methods(row['mapsync']['methods'])} "
            f"| {gets} / {bound} ({_verdict(gets <= bound)}) "
            f"| {row['client']['peak_rss_mb']:.0f} / {row['mapsync']['peak_rss_mb']:.0f} "
            f"| {'yes' if row['same_records'] else '**no**'} |")
    return lines


def _memory_lines(results: dict[str, Any]) -> list[str]:
    sizes = sorted(results["sizes"])
    if len(sizes) < 2:
        return ["Peak memory 10k -> 100k: measured only with `--sizes 10000 100000` (target: flat, < 1.5x).", ""]
    small, large = sizes[0], sizes[-1]
    lines = [f"Peak memory of the initial sync, {large:,} / {small:,} records (target: flat, < 1.5x):", ""]
    for tool in TOOLS:
        peaks = [max(row[tool]["peak_rss_mb"] for rows in results["sizes"][size].values() for row in rows)
                 for size in (small, large)]
        ratio = peaks[1] / peaks[0]
        lines.append(f"- {tool}: {peaks[0]:.0f} MB -> {peaks[1]:.0f} MB, {ratio:.2f}x ({_verdict(ratio < 1.5)})")
    return [*lines, ""]


def summary_rows(results: dict[str, Any]) -> list[str]:
    """Rows for the Summary table of docs/performance.md (figure, value, baseline, target, met)."""
    rows = []
    for records, conditions in results["sizes"].items():
        for condition, steps in conditions.items():
            initial, worst = steps[0], max(steps[1:], key=lambda row: _ratio(row, "seconds"))
            time_ratio, cpu_ratio, rerun_ratio = (_ratio(initial, "seconds"), _ratio(initial, "cpu"),
                                                  _ratio(worst, "seconds"))
            # The first rerun reads mapsync's own writes back (see "Where the time goes"); the ones after it
            # read what changed, as the client does.
            later = max(steps[2:], key=lambda row: _ratio(row, "seconds"))
            later_ratio = _ratio(later, "seconds")
            unbounded = [r["step"] for r in steps if r["mapsync"]["methods"].get("GET", 0) > r["mapsync"]["get_bound"]]
            versus = "/ hand-written client"
            figures = (
                (f"initial sync time {versus}", f"{time_ratio:.3f}", "<= 1.0", time_ratio <= 1.0),
                (f"initial sync CPU {versus}", f"{cpu_ratio:.3f}", "<= 1.1", cpu_ratio <= 1.1),
                (f"slowest rerun time {versus}", f"{rerun_ratio:.3f} ({worst['step']})", "<= 1.5", rerun_ratio <= 1.5),
                (f"slowest rerun after the read-back of mapsync's own writes, time {versus}",
                 f"{later_ratio:.3f} ({later['step']})", "<= 1.5", later_ratio <= 1.5),
                ("mapsync runs whose GETs exceed the listing pages", ", ".join(unbounded) or "none", "none",
                 not unbounded),
            )
            rows += [f"| {what}, {records:,} records, {condition} | {value} | bench/client.py | {target} | "
                     f"{_verdict(met)} |" for what, value, target, met in figures]
    return rows


PROFILE_NOTE = """### Where the time goes

`.venv/bin/python -m bench.compare --profile 10000` (and `--tool client` for the baseline): cProfile in
every thread, CPU time, 10,000 records spread out; measured 2026-11-26 (cProfile inflates call-heavy code:
compare shares, not seconds). Profiler totals for the initial sync: mapsync 61.5 s before this pass, 41.0 s
after; the client 50.1 s.

- httpcore's shared connection pool scanned every connection (and polled each idle socket) per request, for
  both tools: mapsync now gives each worker thread a pool of its own (16.7 s -> 1.7 s cumulative); URLs
  are built once per path (4.2 s -> 0.1 s); fixed auth headers are client headers; a create's body is built
  once (20,000 -> 10,000 `create_body` calls). What is left above the client is the planner's per-record
  work on the main thread (`_scan_source`, the action's `dataclasses.replace`, projecting each create's
  answer) and the state store's batched writes.
- The first rerun after an initial sync lists mapsync's own writes back (`unchanged` above): Custompms's
  `updated_since` cannot leave them out without leaving out others' edits made meanwhile, so that run reads
  every page of them (the GET bound counts them) and is slower than the client, which never reads Custompms.
  Each page costs one lookup of change markers (no link loaded, nothing mapped), and both listings of a
  dataflow are read ahead in threads of their own: profiled CPU of that run 2.8 s -> 1.4 s. The run after it
  (`settled`) and the runs with changes read what changed, one page per listing.
- Bulk-loaded data no longer costs the runs after it: the overlap window is measured from the server's
  answer (the `Date` of the first page), so a run lists from the last record it saw once the import is more
  than a window old (docs/sync-semantics.md).
"""


def markdown(results: dict[str, Any]) -> list[str]:
    sizes = " ".join(str(size) for size in results["sizes"])
    out = ["## Against a hand-written client", "",
           f"`.venv/bin/python -m bench.compare --sizes {sizes}` (part of `make bench`; the full comparison is "
           "`--sizes 10000 100000`). Emulators in a child process with 20 ms latency per request, "
           f"concurrency {CONCURRENCY}, page size {PAGE_SIZE}; each run is a subprocess of its own, measured the "
           "same way for both tools (wall time and process CPU around the sync; peak RSS of the process, "
           "interpreter and imports included). Ratios are mapsync / client. The client (bench/client.py) "
           "is one-way: it lists Tidsbanken with an updated-since filter and never reads Custompms; "
           "mapsync lists both sides. The GET bound is the pages needed to list, on each side mapsync reads, "
           "what changed since its previous run began (its own writes included), plus one page per listing. "
           f"Machine: {results.get('machine', 'not recorded')}.", ""]
    for records, conditions in results["sizes"].items():
        for condition, rows in conditions.items():
            what = ("change times spread out" if condition == "spread"
                    else "loaded in bulk: every change time within one minute")
            out += [f"### {records:,} records, {what}", "", *_table(rows), ""]
    return [*out, *_memory_lines(results), PROFILE_NOTE]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000], help="records per run (default 10000)")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--postgres", metavar="URL", help="mapsync's state in PostgreSQL at URL, e.g. "
                        "postgresql://127.0.0.1:5432/test (a schema of its own, dropped after)")
    parser.add_argument("--profile", type=int, metavar="RECORDS", help="profile an initial sync instead")
    parser.add_argument("--tool", choices=TOOLS, default="mapsync", help="the tool --profile profiles")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker[0], Path(args.worker[1]))))
        return 0
    if args.profile:
        from bench.profile_sync import profile

        profile(args.profile, args.tool)
        return 0
    print("\n".join(markdown(run(tuple(args.sizes), tuple(args.conditions), args.postgres))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
