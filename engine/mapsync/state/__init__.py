"""The state store: links, cursors, pending creates, dead letters, conflicts and the run lock.

`open_store(url)` picks the backend by the URL's scheme:

    sqlite:///.mapsync/state.db                      the embedded default (a file, or :memory:)
    postgresql://user@host:5432/dbname?schema=name   production; several workers share it
"""

from __future__ import annotations

import typing
from collections.abc import Callable

from mapsync import _lazy
from mapsync.errors import SpecError

if typing.TYPE_CHECKING:
    from mapsync.state.base import Conflict, DeadLetter, Link, PendingCreate, RunLock, StateStore, Values

_BASE = ("Conflict", "DeadLetter", "Link", "PendingCreate", "RunLock", "StateStore", "Values")


# Imported on first use (PEP 562): `mapsync validate` reads only STORES, to check the `state:` scheme.
__getattr__ = _lazy.lazy_exports(__name__, dict.fromkeys(_BASE, "mapsync.state.base"), globals())


def _open_sqlite(url: str) -> StateStore:
    from mapsync.state.sqlite import SqliteStore

    return SqliteStore.open(url)


_POSTGRES_EXTRA_MISSING = "the PostgreSQL state needs psycopg: pip install 'mapsync[postgres]'"


def _open_postgres(url: str) -> StateStore:
    # Imported only when asked for: psycopg is an optional extra, and SQLite users never load it.
    try:
        from mapsync.state.postgres import PostgresStore
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".", 1)[0] != "psycopg":
            raise
        # a SpecError, so the CLI exits 2: the workspace asks for something this installation lacks
        raise SpecError(_POSTGRES_EXTRA_MISSING) from exc

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
