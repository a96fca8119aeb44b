"""Suite-wide fixtures: started sandboxes (the Tidsbanken and Custompms emulators on 127.0.0.1), and the
state store URLs every store-backed test runs on: SQLite and PostgreSQL.

PostgreSQL runs use a fresh schema per test (dropped afterwards), so parallel workers never collide. When
the server is unreachable those runs are skipped with the reason, unless CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from mapsync.sandbox import Sandbox, SeedSize

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
