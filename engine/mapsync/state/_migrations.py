"""The state schema: the SQL dialects, and the numbered migrations that build and upgrade the tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mapsync.errors import StateError
from mapsync.state._history import history_statements
from mapsync.state._schedule import SCHEDULE_STATEMENTS

META_TABLE = "mapsync_meta"
SCHEMA_VERSION_KEY = "schema_version"


@dataclass(frozen=True)
class Dialect:
    """The few words of SQL that differ between databases."""

    name: str
    json_type: str  # JSONB on PostgreSQL (indexable, validated); plain TEXT holding JSON on SQLite
    # What keeps a row read in a transaction from changing until it commits: FOR SHARE on PostgreSQL;
    # nothing on SQLite, where BEGIN IMMEDIATE already keeps every other writer out.
    share_row: str


SQLITE = Dialect(name="sqlite", json_type="TEXT", share_row="")
POSTGRESQL = Dialect(name="postgresql", json_type="JSONB", share_row=" FOR SHARE")


@dataclass(frozen=True)
class Migration:
    """One step of the schema: `version` N turns a database at N-1 into one at N.

    Statements are templates: `{json}` becomes the dialect's JSON column type. `only` adds statements
    for one dialect (keyed by `Dialect.name`), for what exists on one backend alone.
    """

    version: int
    description: str
    statements: tuple[str, ...]
    only: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def render(self, dialect: Dialect) -> list[str]:
        templates = (*self.statements, *self.only.get(dialect.name, ()))
        return [t.format(json=dialect.json_type) for t in templates]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="links, cursors, pending creates, dead letters, conflicts (and SQLite's run locks)",
        statements=(
            """CREATE TABLE links (
                dataflow TEXT NOT NULL,
                source_id TEXT NOT NULL,
                target_id TEXT NOT NULL,
                source_values {json} NOT NULL,
                target_values {json} NOT NULL,
                source_version TEXT,
                target_version TEXT,
                state TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, source_id),
                UNIQUE (dataflow, target_id)
            )""",
            """CREATE TABLE cursors (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (dataflow, side)
            )""",
            """CREATE TABLE pending_creates (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                record_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, side, record_id)
            )""",
            """CREATE TABLE dead_letters (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                record_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                status INTEGER,
                attempts INTEGER NOT NULL,
                first_failed_at TEXT NOT NULL,
                last_failed_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, side, record_id)
            )""",
            """CREATE TABLE conflicts (
                dataflow TEXT NOT NULL,
                source_id TEXT NOT NULL,
                target_id TEXT NOT NULL,
                prop TEXT NOT NULL,
                base {json} NOT NULL,
                source_value {json} NOT NULL,
                target_value {json} NOT NULL,
                detected_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, source_id, prop)
            )""",
        ),
        # PostgreSQL locks with advisory locks that die with the connection; SQLite needs a table.
        only={
            "sqlite": (
                """CREATE TABLE run_locks (
                    name TEXT PRIMARY KEY,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    token TEXT NOT NULL,
                    acquired_at TEXT NOT NULL,
                    heartbeat_at TEXT NOT NULL
                )""",
            )
        },
    ),
    Migration(
        version=2,
        description="run lock fencing: a generation per lock name, and who holds a SQLite lock (boot, start)",
        statements=(
            # Taking a lock bumps its generation; a run that sees another generation than the one it
            # took has lost its lock and must write nothing more.
            """CREATE TABLE lock_fences (
                name TEXT PRIMARY KEY,
                generation BIGINT NOT NULL
            )""",
        ),
        only={
            "sqlite": (
                "ALTER TABLE run_locks ADD COLUMN boot_id TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE run_locks ADD COLUMN process_start TEXT NOT NULL DEFAULT ''",
            )
        },
    ),
    Migration(
        version=3,
        description="retired links (what an unlink knew, to relink a record that comes back) and the "
                    "delete guard's baseline",
        statements=(
            """CREATE TABLE retired_links (
                dataflow TEXT NOT NULL,
                source_id TEXT NOT NULL,
                target_id TEXT NOT NULL,
                source_values {json} NOT NULL,
                target_values {json} NOT NULL,
                source_version TEXT,
                target_version TEXT,
                gone TEXT NOT NULL,
                retired_at TEXT NOT NULL,
                PRIMARY KEY (dataflow, source_id)
            )""",
            "CREATE INDEX retired_links_by_target ON retired_links (dataflow, target_id)",
            """CREATE TABLE guard_baselines (
                dataflow TEXT PRIMARY KEY,
                links INTEGER NOT NULL,
                confirmed_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=4,
        description="the history of every write (mapsync history, see _history)",
        statements=(),
        # Only the auto-numbered key differs: SQLite's rowid, PostgreSQL's identity column.
        only={"sqlite": history_statements("INTEGER PRIMARY KEY"),
              "postgresql": history_statements("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")},
    ),
    Migration(
        version=5,
        description="the counters of create_id templates: the last {counter} given, per dataflow and side",
        statements=(
            """CREATE TABLE id_counters (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                value BIGINT NOT NULL,
                PRIMARY KEY (dataflow, side)
            )""",
        ),
    ),
    Migration(
        version=6,
        description="lean links (the keys of their values kept once, in value_layouts; see _compact) and "
                    "the tails of the cursors (see _tails)",
        statements=(
            """CREATE TABLE value_layouts (
                id TEXT PRIMARY KEY,
                keys {json} NOT NULL
            )""",
            """CREATE TABLE scan_tails (
                dataflow TEXT NOT NULL,
                side TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                seen {json} NOT NULL,
                PRIMARY KEY (dataflow, side)
            )""",
        ),
        only={
            # The link's key is its row's key (no separate index for it): rebuilt, rows kept as they are.
            "sqlite": (
                """CREATE TABLE links_lean (
                    dataflow TEXT NOT NULL,
                    source_id TEXT NOT NULL,
                    target_id TEXT NOT NULL,
                    source_values TEXT NOT NULL,
                    target_values TEXT NOT NULL,
                    source_version TEXT,
                    target_version TEXT,
                    state TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    PRIMARY KEY (dataflow, source_id),
                    UNIQUE (dataflow, target_id)
                ) WITHOUT ROWID""",
                "INSERT INTO links_lean SELECT dataflow, source_id, target_id, source_values, target_values, "
                "source_version, target_version, state, updated_at FROM links",
                "DROP TABLE links",
                "ALTER TABLE links_lean RENAME TO links",
            ),
            # Plain text: JSONB's binary form of a short array is larger, and the store never queries inside.
            "postgresql": (
                "ALTER TABLE links ALTER COLUMN source_values TYPE TEXT, ALTER COLUMN target_values TYPE TEXT",
            ),
        },
    ),
    Migration(
        version=7,
        description="the schedule the workers share: each dataflow's last run (see _schedule)",
        statements=SCHEDULE_STATEMENTS,
    ),
)


def check_migrations(migrations: Sequence[Migration]) -> int:
    """Return the newest version, after making sure the steps are numbered 1, 2, ... without gaps."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise StateError(f"migration {migration.description!r} has version {migration.version}, "
                             f"expected {expected}")
    return len(migrations)


def newer_schema_error(found: int, known: int) -> StateError:
    return StateError(f"state store schema version {found} is newer than this mapsync (knows {known}); "
                      "upgrade mapsync")
