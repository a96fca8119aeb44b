"""The state store: links, cursors, pending creates, dead letters, conflicts and the run lock.

`open_store(url)` picks the backend by the URL's scheme:

    sqlite:///.mapsync/state.db                      the embedded default (a file, or :memory:)
    postgresql://user@host:5432/dbname?schema=name   production; several workers share it
"""

from __future__ import annotations

from collections.abc import Callable

from mapsync.errors import SpecError
from mapsync.state.base import Conflict, DeadLetter, Link, PendingCreate, RunLock, StateStore, Values


def _open_sqlite(url: str) -> StateStore:
    from mapsync.state.sqlite import SqliteStore

    return SqliteStore.open(url)


def _open_postgres(url: str) -> StateStore:
    # Imported only when asked for, so SQLite users never load psycopg.
    from mapsync.state.postgres import PostgresStore

    return PostgresStore.open(url)


# The backends by URL scheme (the word before "://" in mapsync.yaml's `state:`).
STORES: dict[str, Callable[[str], StateStore]] = {
    "postgres": _open_postgres,
    "postgresql": _open_postgres,
    "sqlite": _open_sqlite,
}


def open_store(url: str) -> StateStore:
    """Open the state store at `url`, creating or upgrading its schema as needed."""
    # The scheme is read off the text: a URL that does not parse is the backend's to refuse, politely.
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    opener = STORES.get(scheme)
    if opener is None:
        known = ", ".join(sorted(STORES))
        shown = url.split("://", 1)[0] + "://..." if "://" in url else url
        raise SpecError(f"unknown state store {shown!r}: the URL scheme must be one of {known}")
    return opener(url)


__all__ = [
    "STORES",
    "Conflict",
    "DeadLetter",
    "Link",
    "PendingCreate",
    "RunLock",
    "StateStore",
    "Values",
    "open_store",
]
