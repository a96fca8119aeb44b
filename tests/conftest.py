"""Suite-wide fixtures: started sandboxes (the Tidsbanken and Custompms emulators on 127.0.0.1), and the
state store URLs every store-backed test runs on: SQLite and PostgreSQL.

PostgreSQL runs use a fresh schema per test (dropped afterwards), so parallel workers never collide. When
the server is unreachable those runs are skipped with the reason, unless CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from mapsync.sandbox import Sandbox, SeedSize
from mapsync.state.postgres import advisory_key, key_halves, split_url
from mapsync.state.sqlite import SqliteStore

SMALL_SEED = SeedSize(avdelinger=3, kunder=10, prosjekter=20)


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """make_sandbox(**Sandbox kwargs) -> a started Sandbox, stopped at teardown."""
    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sandbox = Sandbox(**kwargs).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small seeded sandbox (3 Avdelinger, 10 Kunder, 20 Prosjekter), faults off."""
    return make_sandbox(seed=SMALL_SEED, rng_seed=1)


@pytest.fixture
def empty_sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Both systems empty, faults off."""
    return make_sandbox(seed=None)


# MAPSYNC_TEST_POSTGRES points the suite at another server (or at none, to try the skip).
PG_SERVER = os.environ.get("MAPSYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_unreachable() -> str | None:
    try:
        with psycopg.connect(PG_SERVER, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__


@pytest.fixture(scope="session")
def pg_server() -> str:
    reason = _pg_unreachable()
    if reason is not None:
        where = urlsplit(PG_SERVER)
        message = f"PostgreSQL not reachable at {where.hostname}:{where.port or 5432}: {reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PG_SERVER


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty state store, on SQLite and on PostgreSQL (a fresh schema, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state/state.db"
        return
    server: str = request.getfixturevalue("pg_server")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{server}?schema={schema}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def drop_lock_connections(pg_server: str) -> Callable[[str, Sequence[str]], int]:
    """drop_lock_connections(store_url, lock names) -> how many sessions it ended.

    As a network blip, a pooler restart or an administrator would: the server terminates the session of
    every `mapsync lock:` connection holding one of the named run locks in the store_url's schema (and no
    other test's), and returns once they are gone, so the locks are free.
    """

    def drop(url: str, names: Sequence[str]) -> int:
        _, schema = split_url(url)
        with psycopg.connect(pg_server, autocommit=True) as conn:
            pids = [row[0] for name in names for row in conn.execute(
                "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.application_name LIKE 'mapsync lock:%%' AND l.locktype = 'advisory' AND l.granted "
                "AND l.objsubid = 1 AND l.classid::bigint = %s AND l.objid::bigint = %s",
                key_halves(advisory_key(f"{schema or ''}/{name}"))).fetchall()]
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 10
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                               (pids,)).fetchall()[0][0]:
                assert time.monotonic() < deadline, f"server sessions {pids} did not end"
                time.sleep(0.02)
        return len(pids)

    return drop


@pytest.fixture
def plant_lock_holder() -> Callable[..., None]:
    """plant_lock_holder(sqlite_url, name, pid=, boot=, start=): a SQLite run_locks row as a run on this
    host would have left it (with a fresh heartbeat), naming that pid, boot id and process start time."""

    def plant(url: str, name: str, *, pid: int, boot: str, start: str) -> None:
        SqliteStore.open(url).close()  # the schema
        now = datetime.now(UTC).isoformat()
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
            conn.execute("INSERT INTO run_locks (name, host, pid, token, acquired_at, heartbeat_at, boot_id, "
                         "process_start) VALUES (?, ?, ?, 'left-behind', ?, ?, ?, ?)",
                         (name, socket.gethostname(), pid, now, now, boot, start))

    return plant


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process (its pid is alive, and is no mapsync's)."""
    with subprocess.Popen(["sleep", "120"]) as child:
        yield child
        child.kill()
