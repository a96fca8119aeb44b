"""The store creates and upgrades its own schema, and refuses one newer than it knows."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mapsync.errors import StateError
from mapsync.state import Link
from mapsync.state._sql import MIGRATIONS, Migration, SqlStore, check_migrations
from mapsync.state.postgres import PostgresStore
from mapsync.state.sqlite import SqliteStore

# A stand-in for the next real migration: it changes data, so its effect shows through the public API.
MARK_LINKS = Migration(len(MIGRATIONS) + 1, "test: mark existing links",
                       ("UPDATE links SET state = 'migrated'",))


def open_with(url: str, migrations: Sequence[Migration]) -> SqlStore:
    if url.startswith("sqlite"):
        return SqliteStore.open(url, migrations=migrations)
    return PostgresStore.open(url, migrations=migrations)


def test_a_new_store_is_at_the_newest_version_and_reopening_changes_nothing(store_url: str) -> None:
    with open_with(store_url, MIGRATIONS) as store:
        assert store.schema_version() == len(MIGRATIONS)
        store.put_link(Link("kunde", "S1", "T1"))
    with open_with(store_url, MIGRATIONS) as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.count_links("kunde") == 1


def test_an_older_store_is_upgraded_in_order_once(store_url: str) -> None:
    with open_with(store_url, MIGRATIONS) as store:
        store.put_link(Link("kunde", "S1", "T1"))

    with open_with(store_url, (*MIGRATIONS, MARK_LINKS)) as store:
        assert store.schema_version() == MARK_LINKS.version
        assert [link.state for link in store.iter_links()] == ["migrated"]
        store.put_link(Link("kunde", "S2", "T2"))

    with open_with(store_url, (*MIGRATIONS, MARK_LINKS)) as store:  # not applied a second time
        assert [link.state for link in store.iter_links()] == ["migrated", "ok"]


def test_a_newer_store_is_refused(store_url: str) -> None:
    open_with(store_url, (*MIGRATIONS, MARK_LINKS)).close()

    known = len(MIGRATIONS)
    message = (f"state store schema version {known + 1} is newer than this mapsync (knows {known}); "
               "upgrade mapsync")
    with pytest.raises(StateError) as caught:
        open_with(store_url, MIGRATIONS)
    assert str(caught.value) == message


def test_migrations_must_be_numbered_without_gaps() -> None:
    assert check_migrations(MIGRATIONS) == len(MIGRATIONS)
    skipping = Migration(len(MIGRATIONS) + 2, "skips one", ())
    with pytest.raises(StateError, match=f"expected {len(MIGRATIONS) + 1}"):
        check_migrations((*MIGRATIONS, skipping))
