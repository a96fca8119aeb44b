"""The embedded state store: one SQLite file (WAL mode), or `:memory:`.

URL: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `sqlite:///:memory:`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mapsync.errors import LockHeldError, SpecError, StateError
from mapsync.state._sql import MIGRATIONS, SQLITE, Migration, Row, SqlStore, UniqueViolation, now_iso

PREFIX = "sqlite:///"
MEMORY = ":memory:"
# Another process writing (a second run, `mapsync links`) makes us wait this long before failing.
BUSY_TIMEOUT = 30.0
# A lock whose owner has not beaten for this long is abandoned (its owner hung or its host died).
STALE_AFTER = 600.0
HEARTBEAT_EVERY = 60.0
LOCK_POLL = 0.1


def path_from_url(url: str) -> str:
    """The file path in a `sqlite:///...` URL; everything after the third slash is the path."""
    if not url.startswith(PREFIX) or len(url) == len(PREFIX) or "?" in url:
        raise SpecError(f"a SQLite state URL looks like sqlite:///path/to/state.db or "
                        f"sqlite:///:memory:, not {url!r}")
    return url[len(PREFIX):]


def connect(path: str) -> sqlite3.Connection:
    """Open `path` in autocommit mode: the store issues BEGIN and COMMIT itself."""
    if path != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        if path != MEMORY:
            # WAL lets readers run beside the one writer; NORMAL syncs at checkpoints only, which is
            # still crash-safe in WAL mode (a power cut may lose the last commits, never corrupt).
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise StateError(f"cannot open SQLite state {path!r}: {exc}") from exc
    return conn


@dataclass(frozen=True)
class LockHolder:
    host: str
    pid: int
    token: str
    acquired_at: str
    heartbeat_at: str

    def describe(self) -> str:
        return (f"pid {self.pid} on {self.host} since {self.acquired_at} "
                f"(last heartbeat {self.heartbeat_at})")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 checks existence without touching the process
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to someone else
    return True


def seconds_since(iso: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()


class Heartbeat:
    """Refreshes a held lock's heartbeat from a thread with its own connection, until stopped."""

    def __init__(self, path: str, name: str, token: str, every: float) -> None:
        self._path, self._name, self._token, self._every = path, name, token, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mapsync-lock-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            while not self._stop.wait(self._every):
                # A busy or briefly unwritable file is no reason to stop: the next beat tries again.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("UPDATE run_locks SET heartbeat_at = ? WHERE name = ? AND token = ?",
                                 (now_iso(), self._name, self._token))
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class SqliteStore(SqlStore):
    dialect = SQLITE

    def __init__(self, url: str, *, stale_after: float = STALE_AFTER,
                 heartbeat_every: float = HEARTBEAT_EVERY) -> None:
        super().__init__(url)
        self.path = path_from_url(url)
        self.stale_after = stale_after
        self.heartbeat_every = heartbeat_every
        self._conn = connect(self.path)

    @classmethod
    def open(cls, url: str, *, migrations: Sequence[Migration] = MIGRATIONS, stale_after: float = STALE_AFTER,
             heartbeat_every: float = HEARTBEAT_EVERY) -> SqliteStore:
        return cls._migrated(cls(url, stale_after=stale_after, heartbeat_every=heartbeat_every), migrations)

    # -- driver ---------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._state_error(exc) from exc

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise self._state_error(exc) from exc

    def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        try:
            return self._conn.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise self._state_error(exc) from exc

    def _state_error(self, exc: sqlite3.Error) -> StateError:
        if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
            return UniqueViolation(f"state store {self.url}: {exc}")
        return StateError(f"state store {self.url}: {exc}")

    @contextmanager
    def _begin_commit(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so two processes never both read and then both try
        # to upgrade to writing (which SQLite resolves by failing one of them, busy timeout or not).
        self._write("BEGIN IMMEDIATE")
        try:
            yield
            self._write("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # some errors make SQLite roll back on its own
                self._conn.execute("ROLLBACK")
            raise

    def _before_migrations(self) -> None:
        pass  # BEGIN IMMEDIATE already keeps a second opener out until we commit

    def _close_connection(self) -> None:
        self._conn.close()

    # -- the run lock ---------------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the run lock `name`, polling for up to `wait` seconds while another owner has it."""
        self._refuse_inside_transaction()
        token = uuid.uuid4().hex
        self._acquire(name, token, wait)
        heartbeat = None if self.path == MEMORY else Heartbeat(self.path, name, token, self.heartbeat_every)
        try:
            yield
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            with self.transaction():
                self._write("DELETE FROM run_locks WHERE name = ? AND token = ?", (name, token))

    def _acquire(self, name: str, token: str, wait: float) -> None:
        deadline = time.monotonic() + wait
        while (holder := self._try_acquire(name, token)) is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = f" (waited {wait:g}s)" if wait > 0 else ""
                raise LockHeldError(f"lock {name!r} on {self.url} is held by {holder.describe()}{waited}")
            time.sleep(min(LOCK_POLL, remaining))

    def _try_acquire(self, name: str, token: str) -> LockHolder | None:
        """Take the lock if it is free or stale; otherwise return who holds it."""
        with self.transaction():
            rows = self._query("SELECT host, pid, token, acquired_at, heartbeat_at FROM run_locks "
                               "WHERE name = ?", (name,))
            if rows:
                holder = LockHolder(*rows[0])
                if not self._is_stale(holder):
                    return holder
            now = now_iso()
            self._write("INSERT INTO run_locks (name, host, pid, token, acquired_at, heartbeat_at) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET host = excluded.host, "
                        "pid = excluded.pid, token = excluded.token, acquired_at = excluded.acquired_at, "
                        "heartbeat_at = excluded.heartbeat_at",
                        (name, socket.gethostname(), os.getpid(), token, now, now))
        return None

    def _is_stale(self, holder: LockHolder) -> bool:
        if seconds_since(holder.heartbeat_at) > self.stale_after:
            return True
        # Only on our own host can we tell whether the owner still runs (killed, crashed, rebooted).
        return holder.host == socket.gethostname() and not pid_alive(holder.pid)
