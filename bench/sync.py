"""Initial and incremental sync against the emulators with 20 ms latency per request.

    .venv/bin/python -m bench.sync [--kunder 10000 --prosjekter 20000 --concurrency 16]

The emulators run in a child process (their memory and CPU are not this process's). Measured in one run:
- the initial sync of 20 Avdelinger, N Kunder, M Prosjekter, against the limit that the concurrency and
  latency allow (writes x latency / concurrency), and against a bare httpx baseline that POSTs the same
  number of records with the same concurrency and no engine at all;
- a second apply with nothing changed (writes must be 0), and one with 1% of records changed (writes must
  equal the number of changed records), each as a share of the initial sync's time;
- the peak resident memory of this process.
`run()` returns the figures for bench/__main__.py.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from mapsync.spec.loader import load_workspace
from mapsync.sync.runner import SyncRun

LATENCY = 0.020
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _serve(avdelinger: int, kunder: int, prosjekter: int, pipe: Connection) -> None:
    """Child process: serve the seeded emulators; edit records when asked."""
    from mapsync.sandbox import Faults, Sandbox, SeedSize

    with Sandbox(seed=SeedSize(avdelinger=avdelinger, kunder=kunder, prosjekter=prosjekter),
                 faults=Faults(latency=LATENCY), rng_seed=1) as sandbox:
        pipe.send(sandbox.env())
        while True:
            command, argument = pipe.recv()
            if command == "stop":
                return
            if command == "edit":
                rng = random.Random(7)
                changed = 0
                for entity in ("Kunde", "Prosjekt"):
                    records = sandbox.tidsbanken.records(entity)
                    for record in rng.sample(records, max(1, int(len(records) * argument))):
                        sandbox.tidsbanken.edit(entity, record["Id"], Navn=record["Navn"] + " (endret)")
                        changed += 1
                pipe.send(changed)


def _workspace(folder: Path, env: dict[str, str], concurrency: int, state: str | None = None) -> Path:
    repo = Path(__file__).resolve().parent.parent
    (folder / "mappings").mkdir(parents=True, exist_ok=True)
    for mapping in (repo / "mappings").glob("*.yaml"):
        (folder / "mappings" / mapping.name).write_text(mapping.read_text(encoding="utf-8"), encoding="utf-8")
    common = f"concurrency: {concurrency}\n    page_size: 500\n    timeout: 60"
    state = state or f"sqlite:///{folder / 'state.db'}"
    (folder / "mapsync.yaml").write_text(f"""state: {state}
mappings: [mappings/*.yaml]
connections:
  tidsbanken:
    type: tidsbanken
    base_url: {env['TIDSBANKEN_URL']}
    api_key: {env['TIDSBANKEN_API_KEY']}
    subscription_key: {env['TIDSBANKEN_SUBSCRIPTION_KEY']}
    {common}
  custompms:
    type: custompms
    base_url: {env['CUSTOMPMS_URL']}
    token: {env['CUSTOMPMS_TOKEN']}
    {common}
""", encoding="utf-8")
    return folder / "mapsync.yaml"


def _apply(config: Path) -> dict[str, Any]:
    workspace = load_workspace(config, env={})
    started = time.perf_counter()
    with SyncRun(workspace) as run:
        report = run.apply()
    seconds = time.perf_counter() - started
    requests = {name: counts for name, counts in report.requests.items()}
    writes = sum(n for counts in requests.values() for method, n in counts.items() if method in WRITES_SET)
    total = report.total
    return {"seconds": seconds, "writes": writes, "status": report.status, "created": total.created,
            "updated": total.updated, "failed": total.failed, "requests": requests}


WRITES_SET = frozenset(WRITE_METHODS)


def _bare_baseline(env: dict[str, str], count: int, concurrency: int) -> float:
    """Seconds for a bare httpx thread pool to POST `count` customers with the same concurrency."""
    headers = {"Authorization": f"Bearer {env['CUSTOMPMS_TOKEN']}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=env["CUSTOMPMS_URL"], headers=headers, limits=limits, timeout=60) as client:
        def post(i: int) -> None:
            client.post("/api/v1/customers", json={"name": f"Baseline {i}", "kind": "customer"},
                        headers={"Idempotency-Key": f"baseline-{i}"}).raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, range(count)))
        return time.perf_counter() - started


def run(kunder: int = 10_000, prosjekter: int = 20_000, avdelinger: int = 20, concurrency: int = 16,
        state: str | None = None) -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(avdelinger, kunder, prosjekter, child), daemon=True)
    server.start()
    try:
        env = parent.recv()
        with tempfile.TemporaryDirectory(prefix="mapsync-bench-") as folder:
            config = _workspace(Path(folder), env, concurrency, state)
            initial = _apply(config)
            unchanged = _apply(config)
            settled = _apply(config)
            parent.send(("edit", 0.01))
            changed = parent.recv()
            one_percent = _apply(config)
        baseline_count = min(3_000, initial["writes"])
        baseline_seconds = _bare_baseline(env, baseline_count, concurrency)
    finally:
        parent.send(("stop", None))
        server.join(10)
    records = avdelinger + kunder + prosjekter
    limit_seconds = initial["writes"] * LATENCY / concurrency
    baseline_rate = baseline_count / baseline_seconds
    return {
        "records": records,
        "concurrency": concurrency,
        "latency_ms": LATENCY * 1000,
        "initial_seconds": initial["seconds"],
        "initial_records_per_second": records / initial["seconds"],
        "initial_writes": initial["writes"],
        "limit_seconds": limit_seconds,
        "share_of_limit": limit_seconds / initial["seconds"],
        "bare_httpx_writes_per_second": baseline_rate,
        "share_of_bare_httpx": (initial["writes"] / initial["seconds"]) / baseline_rate,
        "unchanged_writes": unchanged["writes"],
        "unchanged_seconds": unchanged["seconds"],
        "unchanged_share_of_initial": unchanged["seconds"] / initial["seconds"],
        "settled_seconds": settled["seconds"],
        "settled_share_of_initial": settled["seconds"] / initial["seconds"],
        "changed_records": changed,
        "one_percent_writes": one_percent["writes"],
        "one_percent_seconds": one_percent["seconds"],
        "one_percent_share_of_initial": one_percent["seconds"] / initial["seconds"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "initial_status": initial["status"],
    }


POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def run_postgres(server: str = POSTGRES, **sizes: Any) -> dict[str, Any]:
    """The same run with the production state store, in a schema of its own (dropped after)."""
    import uuid

    import psycopg

    try:
        with psycopg.connect(server, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        return {"skipped": f"PostgreSQL not reachable at {server}: {str(exc).strip()}"}
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        return run(state=f"{server}?schema={schema}", **sizes)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kunder", type=int, default=10_000)
    parser.add_argument("--prosjekter", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--state", help="state store URL (default: a SQLite file in a temporary folder)")
    args = parser.parse_args()
    figures = run(kunder=args.kunder, prosjekter=args.prosjekter, concurrency=args.concurrency, state=args.state)
    for key, value in figures.items():
        print(f"{key:32} {value:,.3f}" if isinstance(value, float) else f"{key:32} {value}")


if __name__ == "__main__":
    main()
