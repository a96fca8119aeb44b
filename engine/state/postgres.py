"""The production state store: PostgreSQL through psycopg 3 (sync API).

URL: `postgresql://user@host:5432/dbname`, optionally `?schema=name` to keep every table in that schema
(created when missing). Other query parameters (sslmode, ...) go to libpq unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from mapsync.errors import LockHeldError, SpecError, StateError
from mapsync.state._sql import MIGRATIONS, POSTGRESQL, Migration, Row, SqlStore, UniqueViolation

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
CONNECT_TIMEOUT = 10  # seconds; libpq waits forever by default
LOCK_POLL = 0.1
MIGRATION_LOCK = "mapsync:migrate"


def redact(url: str) -> str:
    """The URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def split_url(url: str) -> tuple[str, str | None]:
    """Split a state URL into the libpq connection URL and the `schema` query parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = [(key, value) for key, value in query if key != "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and not SCHEMA_NAME.fullmatch(schema):
        raise SpecError(f"state URL {redact(url)}: schema {schema!r} must be a lower-case SQL name "
                        "(letters, digits, underscores)")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock (Python's hash() changes between processes)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore(SqlStore):
    dialect = POSTGRESQL

    def __init__(self, url: str) -> None:
        super().__init__(redact(url))
        self._conninfo, self.schema = split_url(url)
        self._sql_cache: dict[str, str] = {}
        self._conn = self._connect("mapsync")
        # JSONB comes back as its text, so both backends decode it with the same code.
        self._conn.adapters.register_loader("jsonb", TextLoader)

    @classmethod
    def open(cls, url: str, *, migrations: Sequence[Migration] = MIGRATIONS) -> PostgresStore:
        return cls._migrated(cls(url), migrations)

    def _connect(self, application_name: str) -> psycopg.Connection[Row]:
        options: dict[str, Any] = {"application_name": application_name[:63]}
        if "connect_timeout" not in self._conninfo:
            options["connect_timeout"] = CONNECT_TIMEOUT
        if self.schema is not None:
            options["options"] = f"-c search_path={self.schema}"
        try:
            return psycopg.connect(self._conninfo, autocommit=True, **options)
        except psycopg.Error as exc:
            raise StateError(f"cannot connect to the state store {self.url}: {exc}") from exc

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
            raise self._state_error(exc) from exc

    def _write(self, text: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn.execute(self._dialect_sql(text), params).rowcount
        except psycopg.Error as exc:
            raise self._state_error(exc) from exc

    def _write_many(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._dialect_sql(text), rows)
                return cursor.rowcount
        except psycopg.Error as exc:
            raise self._state_error(exc) from exc

    def _state_error(self, exc: psycopg.Error) -> StateError:
        if isinstance(exc, psycopg.errors.UniqueViolation):
            return UniqueViolation(f"state store {self.url}: {exc}")
        return StateError(f"state store {self.url}: {exc}")

    @contextmanager
    def _begin_commit(self) -> Iterator[None]:
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as exc:  # the COMMIT itself failed
            raise self._state_error(exc) from exc

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
    def lock(self, name: str, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the advisory lock `name` on a connection of its own, polling up to `wait` seconds.

        The lock lives exactly as long as that connection: closing it releases the lock, and so does
        the server when a killed process's connection drops.
        """
        self._refuse_inside_transaction()
        key = advisory_key(f"{self.schema or ''}/{name}")
        conn = self._connect(f"mapsync lock: pid {os.getpid()} on {socket.gethostname()}")
        try:
            self._acquire(conn, name, key, wait)
            yield
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
            raise self._state_error(exc) from exc

    @staticmethod
    def _describe_holder(conn: psycopg.Connection[Row], key: int) -> str:
        """Who holds advisory lock `key`: a bigint key shows in pg_locks split into two 32-bit halves."""
        rows = conn.execute(
            "SELECT a.application_name, a.pid, a.client_addr::text, a.state_change::text "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        ).fetchall()
        if not rows:
            return "another session (it may just have let go)"
        application, backend, client, since = rows[0]
        who = application.removeprefix("mapsync lock: ") if application else "a session"
        return f"{who} (server backend {backend}, client {client or 'local socket'}) since {since}"
