"""One suite, two backends: every test that takes `store` runs on SQLite and on PostgreSQL (`store_url`
comes from the suite-wide conftest)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mapsync.state import StateStore, open_store


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
