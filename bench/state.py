"""State store throughput: put_link in one transaction and get_links in batches, on SQLite and PostgreSQL,
each against a raw driver baseline measured in the same run (bare table, executemany, plain SELECT).

    .venv/bin/python -m bench.state

PostgreSQL is taken from MAPSYNC_BENCH_POSTGRES (default: the local test server) and skipped, with the
reason, when unreachable. `run()` returns the figures for bench/__main__.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mapsync.errors import StateError
from mapsync.state import Link, StateStore, open_store

LINKS = 20_000
BATCH = 500
POSTGRES = os.environ.get("MAPSYNC_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

Row = tuple[Any, ...]
BARE_TABLE = ("CREATE TABLE bare (dataflow TEXT, source_id TEXT, target_id TEXT, source_values {json}, "
              "target_values {json}, source_version TEXT, target_version TEXT, state TEXT, updated_at TEXT)")


def sample_links(count: int) -> list[Link]:
    """Links shaped like a Kunde <-> Customer dataflow: a dozen short properties a side."""
    def values(n: int) -> dict[str, Any]:
        return {"name": f"Kunde {n} AS", "orgnr": f"{900000000 + n}", "email": f"post{n}@example.no",
                "phone": f"+47 {n:08}", "address.street": f"Gate {n % 200}", "address.zip": f"{n % 9999:04}",
                "address.city": "Oslo", "active": n % 7 != 0, "kind": "customer", "tags": ["a", "b"]}
    return [Link("kunde", f"S{n:06}", f"T{n:06}", values(n), values(n), f"2024-05-01T10:{n % 60:02}:00",
                 str(n % 13)) for n in range(count)]


def as_row(link: Link) -> Row:
    return (link.dataflow, link.source_id, link.target_id, json.dumps(link.source_values),
            json.dumps(link.target_values), link.source_version, link.target_version, link.state, "")


def batches(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start:start + BATCH]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure_store(store: StateStore, links: list[Link]) -> tuple[float, float]:
    """Seconds to put every link in one transaction, and to read them all back in batches."""
    def put_all() -> None:
        with store.transaction():
            for link in links:
                store.put_link(link)

    ids = [link.source_id for link in links]

    def get_all() -> None:
        for chunk in batches(ids):
            assert len(store.get_links("kunde", source_ids=chunk)) == len(chunk)

    return timed(put_all), timed(get_all)


def figures(count: int, put: float, get: float, base_put: float, base_get: float) -> dict[str, float]:
    return {
        "put_link_per_s": round(count / put),
        "put_baseline_per_s": round(count / base_put),
        "put_ratio": round(base_put / put, 3),
        "get_links_per_s": round(count / get),
        "get_baseline_per_s": round(count / base_get),
        "get_ratio": round(base_get / get, 3),
    }


# --- SQLite ------------------------------------------------------------------------------------------


def sqlite_baseline(path: Path, links: list[Link]) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(BARE_TABLE.format(json="TEXT"))
        conn.execute("CREATE UNIQUE INDEX bare_key ON bare (dataflow, source_id)")

        def put_all() -> None:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", map(as_row, links))
            conn.execute("COMMIT")

        def get_all() -> None:
            for chunk in batches([link.source_id for link in links]):
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(f"SELECT * FROM bare WHERE dataflow = ? AND source_id IN ({marks})",
                                    ("kunde", *chunk)).fetchall()
                for row in rows:
                    json.loads(row[3]), json.loads(row[4])

        return timed(put_all), timed(get_all)
    finally:
        conn.close()


def bench_sqlite(links: list[Link]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mapsync-bench-") as folder:
        store = open_store(f"sqlite:///{folder}/state.db")
        try:
            put, get = measure_store(store, links)
        finally:
            store.close()
        base_put, base_get = sqlite_baseline(Path(folder) / "bare.db", links)
    return figures(len(links), put, get, base_put, base_get)


# --- PostgreSQL --------------------------------------------------------------------------------------


@contextmanager
def scratch_schema(server: str) -> Iterator[str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def postgres_baseline(server: str, schema: str, links: list[Link]) -> tuple[float, float]:
    import psycopg

    with psycopg.connect(server, autocommit=True, options=f"-c search_path={schema}") as conn:
        conn.execute(BARE_TABLE.format(json="JSONB"))
        conn.execute("CREATE UNIQUE INDEX bare_key ON bare (dataflow, source_id)")

        def put_all() -> None:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany("INSERT INTO bare VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                                   [as_row(link) for link in links])

        def get_all() -> None:
            for chunk in batches([link.source_id for link in links]):
                marks = ", ".join(["%s"] * len(chunk))
                # The store reads JSONB as text and decodes it itself; read it the same way here.
                rows = conn.execute(f"SELECT dataflow, source_id, target_id, source_values::text, "
                                    f"target_values::text FROM bare WHERE dataflow = %s "
                                    f"AND source_id IN ({marks})", ("kunde", *chunk)).fetchall()
                for row in rows:
                    json.loads(row[3]), json.loads(row[4])

        return timed(put_all), timed(get_all)


def bench_postgres(links: list[Link]) -> dict[str, Any]:
    try:
        with scratch_schema(POSTGRES) as schema:
            store = open_store(f"{POSTGRES}?schema={schema}")
            try:
                put, get = measure_store(store, links)
            finally:
                store.close()
            base_put, base_get = postgres_baseline(POSTGRES, schema, links)
    except (StateError, OSError, ImportError) as exc:
        return {"skipped": f"PostgreSQL not reachable at {POSTGRES}: {exc}"}
    except Exception as exc:  # psycopg's errors, without importing psycopg at module level
        if type(exc).__module__.startswith("psycopg"):
            return {"skipped": f"PostgreSQL not usable at {POSTGRES}: {exc}"}
        raise
    return figures(len(links), put, get, base_put, base_get)


# --- report ------------------------------------------------------------------------------------------


def run() -> dict[str, Any]:
    links = sample_links(LINKS)
    return {"links": LINKS, "batch": BATCH, "sqlite": bench_sqlite(links), "postgresql": bench_postgres(links)}


def report(results: dict[str, Any]) -> str:
    lines = [f"state store: {results['links']} links, get_links in batches of {results['batch']}", ""]
    lines.append(f"{'backend':<11} {'operation':<10} {'store/s':>9} {'baseline/s':>11} {'ratio':>6}")
    for backend in ("sqlite", "postgresql"):
        numbers = results[backend]
        if "skipped" in numbers:
            lines.append(f"{backend:<11} skipped: {numbers['skipped']}")
            continue
        for op, key in (("put_link", "put"), ("get_links", "get")):
            lines.append(f"{backend:<11} {op:<10} {numbers[f'{op}_per_s']:>9,} "
                         f"{numbers[f'{key}_baseline_per_s']:>11,} {numbers[f'{key}_ratio']:>6.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
