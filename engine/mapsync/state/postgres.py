"""The production state store: PostgreSQL through psycopg 3 (sync API).

URL: `postgresql://user@host:5432/dbname`, optionally `?schema=name` to keep every table in that schema
(created when missing). Other query parameters (sslmode, ...) go to libpq unchanged.

The URL may hold a password (in its userinfo or as `?password=`): it is shown only through
`mapsync.redact`, and the text of a psycopg error (libpq may echo parts of the conninfo) is redacted
and never chained into a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from mapsync.errors import LockHeldError, SpecError, StateError
from mapsync.redact import redact_text, redact_url
from mapsync.state._lock import LockProbe, UniqueViolation
from mapsync.state._migrations import MIGRATIONS, POSTGRESQL, Migration
from mapsync.state._rows import Row
from mapsync.state._sql import SqlStore

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
CONNECT_TIMEOUT = 10  # seconds; libpq waits forever by default
# TCP keepalives (libpq's defaults are the kernel's: two hours): a connection that died silently (a NAT
# or pooler forgot it) is noticed within about a minute, and an idle one is kept open through them.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
LOCK_POLL = 0.1
MIGRATION_LOCK = "mapsync:migrate"
# Is advisory lock (classid, objid) granted to this very session? A bigint key shows split in two halves.
HOLDS_LOCK = ("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
              "AND objsubid = 1 AND pid = pg_backend_pid() AND classid::bigint = %s AND objid::bigint = %s)")


def split_url(url: str) -> tuple[str, str | None]:
    """Split a state URL into the libpq connection URL and the `schema` query parameter."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as exc:  # e.g. a stray "[" in the host or password
        raise SpecError(f"state URL {redact_url(url)} does not parse: {exc}") from None
    schemas = [value for key, value in query if key == "schema"]
    rest = [(key, value) for key, value in query if key != "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and not SCHEMA_NAME.fullmatch(schema):
        raise SpecError(f"state URL {redact_url(url)}: schema {schema!r} must be a lower-case SQL name "
                        "(letters, digits, underscores)")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock (Python's hash() changes between processes)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def key_halves(key: int) -> tuple[int, int]:
    """How pg_locks shows advisory lock `key`: its classid and objid, the upper and lower 32 bits."""
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


class PostgresStore(SqlStore):
    dialect = POSTGRESQL

    def __init__(self, url: str) -> None:
        super().__init__(redact_url(url))
        self._conninfo, self.schema = split_url(url)
        self._given = dict(parse_qsl(urlsplit(self._conninfo).query))  # the libpq settings of the URL
        self._sql_cache: dict[str, str] = {}
        self._conn = self._connect("mapsync")
        # JSONB comes back as its text, so both backends decode it with the same code.
        self._conn.adapters.register_loader("jsonb", TextLoader)

    @classmethod
    def open(cls, url: str, *, migrations: Sequence[Migration] = MIGRATIONS) -> PostgresStore:
        return cls._migrated(cls(url), migrations)

    def _connect(self, application_name: str) -> psycopg.Connection[Row]:
        """A connection in autocommit mode, kept alive: a run leaves the store idle for minutes while it
        reads and writes the systems (and the run lock's connection for the whole run), so no idle
        timeout of the server may end it, and TCP keepalives carry it through idle NATs and poolers."""
        settings: dict[str, Any] = {"application_name": application_name[:63]}
        defaults: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **KEEPALIVES}
        settings |= {key: value for key, value in defaults.items() if key not in self._given}
        if self.schema is not None:  # added to the URL's own `options`, which the keyword would replace
            settings["options"] = f"{self._given.get('options', '')} -c search_path={self.schema}".strip()
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, **settings)
        except psycopg.Error as exc:
            raise StateError(f"cannot connect to the state store {self.url}: {self._redacted(exc)}") from None
        try:
            if conn.info.server_version >= 140000:  # idle_session_timeout came with PostgreSQL 14
                conn.execute("SET idle_session_timeout = 0")
        except psycopg.Error as exc:
            conn.close()
            self._raise_state_error(exc)
        return conn

    def _redacted(self, exc: psycopg.Error) -> str:
        """The text of a psycopg error without any secret of the URL (libpq may quote the conninfo)."""
        return redact_text(str(exc).strip(), self._conninfo)

    # -- driver ---------------------------------------------------------------------------------------

    def _dialect_sql(self, text: str) -> str:
        """The shared SQL uses `?` placeholders; psycopg wants `%s`.

        A plain replace is enough because the shared SQL never holds a literal `?` (nor `%`); keep it so
        (no JSONB `?` operator there: write such a query for this backend alone).
        """
        converted = self._sql_cache.get(text)
        if converted is None:
            converted = self._sql_cache[text] = text.replace("?", "%s")
        return converted

    def _query(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(self._dialect_sql(text), params).fetchall()
        except psycopg.Error as exc:
            self._raise_state_error(exc)

    def _write(self, text: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn.execute(self._dialect_sql(text), params).rowcount
        except psycopg.Error as exc:
            self._raise_state_error(exc)

    def _write_many(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._dialect_sql(text), rows)
                return cursor.rowcount
        except psycopg.Error as exc:
            self._raise_state_error(exc)

    def _raise_state_error(self, exc: psycopg.Error) -> NoReturn:
        # Not chained: the redacted text is all of the psycopg error a traceback (--debug) may show.
        kind = UniqueViolation if isinstance(exc, psycopg.errors.UniqueViolation) else StateError
        raise kind(f"state store {self.url}: {self._redacted(exc)}") from None

    @contextmanager
    def _begin_commit(self) -> Iterator[None]:
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as exc:  # the COMMIT itself failed
            self._raise_state_error(exc)

    def _before_migrations(self) -> None:
        # Several workers may open the same database at once: the first migrates, the others wait.
        self._query("SELECT pg_advisory_xact_lock(?::bigint)", (advisory_key(MIGRATION_LOCK),))
        if self.schema is not None:
            statement = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            self._write(statement.as_string(self._conn))

    def _close_connection(self) -> None:
        self._conn.close()

    # -- the run lock ---------------------------------------------------------------------------------

    @contextmanager
    def _hold_lock(self, name: str, wait: float) -> Iterator[LockProbe]:
        """Hold the advisory lock `name` on a connection of its own, polling up to `wait` seconds.

        The lock lives exactly as long as that connection: closing it releases the lock, and so does
        the server when a killed process's connection drops. That is also how a run can lose it
        (a network blip, a pooler restart, an administrator's pg_terminate_backend): the connection is
        kept alive (see _connect), and the probe asks it whether it still holds the lock.
        """
        key = advisory_key(f"{self.schema or ''}/{name}")
        conn = self._connect(f"mapsync lock: pid {os.getpid()} on {socket.gethostname()}")
        try:
            self._acquire(conn, name, key, wait)
            yield lambda: self._lock_gone(conn, key)
        finally:
            conn.close()

    def _acquire(self, conn: psycopg.Connection[Row], name: str, key: int, wait: float) -> None:
        deadline = time.monotonic() + wait
        try:
            while not conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (key,)).fetchall()[0][0]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waited = f" (waited {wait:g}s)" if wait > 0 else ""
                    raise LockHeldError(f"lock {name!r} on {self.url} is held by "
                                        f"{self._describe_holder(conn, key)}{waited}")
                time.sleep(min(LOCK_POLL, remaining))
        except psycopg.Error as exc:
            self._raise_state_error(exc)

    def _lock_gone(self, conn: psycopg.Connection[Row], key: int) -> str | None:
        """Why the lock's connection no longer holds advisory lock `key` (None while it does)."""
        if conn.closed:
            return "its connection to the server is closed"
        try:
            held = conn.execute(HOLDS_LOCK, key_halves(key)).fetchall()[0][0]
        except psycopg.Error as exc:
            reason = self._redacted(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"its connection to the server dropped ({reason})"
        return None if held else "the server no longer holds it for this run"

    @staticmethod
    def _describe_holder(conn: psycopg.Connection[Row], key: int) -> str:
        """Who holds advisory lock `key`."""
        rows = conn.execute(
            "SELECT a.application_name, a.pid, a.client_addr::text, a.state_change::text "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s",
            key_halves(key),
        ).fetchall()
        if not rows:
            return "another session (it may just have let go)"
        application, backend, client, since = rows[0]
        who = application.removeprefix("mapsync lock: ") if application else "a session"
        return f"{who} (server backend {backend}, client {client or 'local socket'}) since {since}"
