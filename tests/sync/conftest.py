"""Fixtures of the end-to-end tests; the harness itself is in sync_harness.py (a module of its own name,
so test modules import it without ever colliding with another folder's conftest)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sync_harness import REPO, SEED, Harness

from mapsync.sandbox import Sandbox


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the reference workspace (mapsync.yaml + mappings/) in its own folder."""
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(REPO / "mapsync.yaml", ws / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", ws / "mappings")
    return ws


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return "sqlite:///" + str(tmp_path / "state.db")


@pytest.fixture
def state_url(store_url: str) -> str:
    """The suite-wide store_url: SQLite and PostgreSQL."""
    return store_url


@pytest.fixture
def make_harness(make_sandbox: Callable[..., Sandbox], workspace: Path, tmp_path: Path
                 ) -> Iterator[Callable[..., Harness]]:
    """make_harness(state_url, socket=False, **Sandbox kwargs) -> a Harness over the seeded emulators, served in
    process, or on sockets with socket=True (for tests about the network and those spawning a subprocess)."""
    made: list[Harness] = []

    def make(state_url: str, *, socket: bool = False, **kwargs: Any) -> Harness:
        kwargs.setdefault("seed", SEED)
        kwargs.setdefault("rng_seed", 1)
        sandbox = make_sandbox(**kwargs) if socket else Sandbox(**kwargs)
        harness = Harness(sandbox, workspace, state_url, tmp_path)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def h(make_harness: Callable[..., Harness], state_url: str) -> Harness:
    """The seeded sandbox in process, on both state stores."""
    return make_harness(state_url)


@pytest.fixture
def hs(make_harness: Callable[..., Harness], sqlite_url: str) -> Harness:
    """The seeded sandbox in process, on SQLite only."""
    return make_harness(sqlite_url)
