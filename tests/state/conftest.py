"""One suite, two backends: every test that takes `store` runs on SQLite and on PostgreSQL.

PostgreSQL runs use a fresh schema per test (dropped afterwards), so parallel workers never collide.
When the server is unreachable those runs are skipped, unless CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from mapsync.state import StateStore, open_store

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
    """A URL to an empty state store; open it as often as a test needs."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state/state.db"
        return
    server: str = request.getfixturevalue("pg_server")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{server}?schema={schema}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def open_stores(store_url: str) -> Iterator[Callable[[], StateStore]]:
    """Opens more stores on the same database (another process, in effect); closes them all after."""
    opened: list[StateStore] = []

    def open_another() -> StateStore:
        opened.append(open_store(store_url))
        return opened[-1]

    yield open_another
    for store in opened:
        store.close()


@pytest.fixture
def store(open_stores: Callable[[], StateStore]) -> StateStore:
    return open_stores()
