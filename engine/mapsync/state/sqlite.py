"""The embedded state store: one SQLite file (WAL mode), or `:memory:`.

URL: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `sqlite:///:memory:`.

The file holds personal data (names, phones, e-mails): it is created 0600 (SQLite gives its -wal and
-shm files the database file's mode), in a folder created 0700 when mapsync creates it, whatever the
umask. A path that cannot hold the database is a SpecError naming the path and what is wrong.

The run lock is a row in `run_locks` naming its holder: host, boot id, pid and the process's start
time, so a pid reused after a reboot or a container restart (same host name, same pids) is told apart
from the live holder.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from mapsync.errors import LockHeldError, SpecError, StateError
from mapsync.redact import redact_url
from mapsync.state._lock import LockProbe, UniqueViolation
from mapsync.state._migrations import MIGRATIONS, SQLITE, Migration
from mapsync.state._rows import Row, now_iso
from mapsync.state._sql import SqlStore

PREFIX = "sqlite:///"
MEMORY = ":memory:"
# Another process writing (a second run, `mapsync links`) makes us wait this long before failing.
BUSY_TIMEOUT = 30.0
# A lock whose owner has not beaten for this long is abandoned (its owner hung or its host died).
STALE_AFTER = 600.0
HEARTBEAT_EVERY = 60.0
LOCK_POLL = 0.1
FOLDER_MODE = 0o700
FILE_MODE = 0o600
HOLDER_COLUMNS = "host, pid, token, acquired_at, heartbeat_at, boot_id, process_start"


def path_from_url(url: str) -> str:
    """The file path in a `sqlite:///...` URL; everything after the third slash is the path."""
    if not url.startswith(PREFIX) or len(url) == len(PREFIX) or "?" in url:
        raise SpecError(f"a SQLite state URL looks like sqlite:///path/to/state.db or "
                        f"sqlite:///:memory:, not {redact_url(url)!r}")
    return url[len(PREFIX):]


def prepare_file(url: str, path: str) -> None:
    """Make `path` ready to hold the database: missing folders created 0700, the file created 0600 (so
    the -wal and -shm files SQLite makes beside it are 0600 too); SpecError when the path cannot hold it."""
    file = Path(path)

    def bad(what: str) -> SpecError:
        return SpecError(f"state {redact_url(url)}: {what}")

    if file.is_dir():
        raise bad(f"{file} is a directory, not a database file")
    make_folders(file.parent, bad)
    try:
        fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        if not os.access(file, os.R_OK | os.W_OK):
            raise bad(f"{file} is not writable") from None
        if not os.access(file.parent, os.W_OK):  # the -wal and -shm files go beside the database
            raise bad(f"the folder {file.parent} is not writable") from None
        return
    except OSError as exc:
        raise bad(f"cannot create {file}: {exc.strerror}") from None
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits off; never on: this sets exactly 0600
    finally:
        os.close(fd)


def make_folders(folder: Path, bad: Callable[[str], SpecError]) -> None:
    """Create `folder` and its missing parents, each 0700 whatever the umask; SpecError (from `bad`)
    naming the first that cannot be made."""
    missing: list[Path] = []
    existing = folder
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise bad(f"{existing} is a file, not a folder")
    for made in reversed(missing):
        try:
            made.mkdir(mode=FOLDER_MODE)
            made.chmod(FOLDER_MODE)
        except FileExistsError:
            pass  # another process made it just now
        except OSError as exc:
            raise bad(f"cannot create the folder {made}: {exc.strerror}") from None


def connect(path: str) -> sqlite3.Connection:
    """Open `path` in autocommit mode: the store issues BEGIN and COMMIT itself."""
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


@cache
def boot_id() -> str:
    """This host's boot id (Linux: new at every boot, shared by its containers); "" where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat); "" where
    /proc cannot tell. With the boot id it tells a live process from another that got the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    # Field 2 is the command in parentheses and may hold spaces or ")": count from the last ")".
    fields = stat[stat.rfind(")") + 1:].split()
    return fields[19] if len(fields) > 19 else ""


@dataclass(frozen=True)
class LockHolder:
    host: str
    pid: int
    token: str
    acquired_at: str
    heartbeat_at: str
    boot_id: str = ""  # "" in a row of a mapsync before schema 2, or where the host has no boot id
    process_start: str = ""

    @classmethod
    def me(cls, token: str, now: str) -> LockHolder:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, token, now, now, boot_id(), process_start(pid))

    def describe(self) -> str:
        return (f"pid {self.pid} on {self.host} since {self.acquired_at} "
                f"(last heartbeat {self.heartbeat_at})")

    def running_here(self) -> bool:
        """Whether the holder, recorded on this host, still runs: same boot, its pid alive, and that pid
        still the process that took the lock (same start time). A container restarted on the same host
        gets the same host name and reuses pids, even the new run's own; an unrelated process may have
        the pid since. Where a part is unknown (an older row, no /proc), the rest decides."""
        if self.boot_id and boot_id() and self.boot_id != boot_id():
            return False  # taken before this host last booted
        if not pid_alive(self.pid):
            return False
        started = process_start(self.pid)
        return not (self.process_start and started and self.process_start != started)


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
        if self.path != MEMORY:
            prepare_file(url, self.path)
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
    def _hold_lock(self, name: str, wait: float) -> Iterator[LockProbe]:
        """Hold the lock row `name`, kept fresh by a heartbeat; the probe sees the row taken over."""
        token = uuid.uuid4().hex
        self._acquire(name, token, wait)
        heartbeat = None if self.path == MEMORY else Heartbeat(self.path, name, token, self.heartbeat_every)
        try:
            yield lambda: self._lock_gone(name, token)
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

    def _holder(self, name: str) -> LockHolder | None:
        rows = self._query(f"SELECT {HOLDER_COLUMNS} FROM run_locks WHERE name = ?", (name,))
        return LockHolder(*rows[0]) if rows else None

    def _try_acquire(self, name: str, token: str) -> LockHolder | None:
        """Take the lock if it is free or stale; otherwise return who holds it."""
        with self.transaction():
            holder = self._holder(name)
            if holder is not None and not self._is_stale(holder):
                return holder
            me = LockHolder.me(token, now_iso())
            self._write(f"INSERT INTO run_locks (name, {HOLDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                        "token = excluded.token, acquired_at = excluded.acquired_at, "
                        "heartbeat_at = excluded.heartbeat_at, boot_id = excluded.boot_id, "
                        "process_start = excluded.process_start",
                        (name, me.host, me.pid, me.token, me.acquired_at, me.heartbeat_at, me.boot_id,
                         me.process_start))
        return None

    def _is_stale(self, holder: LockHolder) -> bool:
        if seconds_since(holder.heartbeat_at) > self.stale_after:
            return True
        # Only on our own host can we tell whether the owner still runs (killed, crashed, rebooted).
        return holder.host == socket.gethostname() and not holder.running_here()

    def _lock_gone(self, name: str, token: str) -> str | None:
        """Why the lock row `name` is no longer ours (None while it is)."""
        holder = self._holder(name)
        if holder is None:
            return "its row in run_locks is gone"
        if holder.token != token:
            return f"it was taken over as stale by {holder.describe()}"
        return None
