"""The validated, typed form of mapsync.yaml and the mapping files."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast


# The closed words of a mapping file. StrEnums: each value is the word as written in YAML and shown in
# messages, so a member compares equal to (and prints as) its plain string.
class ConflictPolicy(enum.StrEnum):
    SOURCE_WINS = "source-wins"
    TARGET_WINS = "target-wins"
    NEWEST_WINS = "newest-wins"
    MANUAL = "manual"


class DeletePolicy(enum.StrEnum):
    UNLINK = "unlink"
    RECREATE = "recreate"
    PROPAGATE = "propagate"
    IGNORE = "ignore"


class Direction(enum.StrEnum):
    BOTH = "both"
    FORWARD = "forward"
    REVERSE = "reverse"
    NONE = "none"  # never written in YAML: a row that gave up every write to rows with `wins` (ownership)


class LookupUnknown(enum.StrEnum):
    """What a row's `lookup_unknown` does with a value its lookup table does not hold."""

    KEEP = "keep"
    NULL = "null"
    FAIL = "fail"


class RowType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    REFERENCE = "reference"


_Word = TypeVar("_Word", bound=enum.StrEnum)


@dataclass(frozen=True)
class Side:
    connection: str  # connection name in mapsync.yaml
    system: str  # that connection's type, e.g. "tidsbanken"
    entity: str  # e.g. "Kunde"

    @property
    def label(self) -> str:
        return f"{self.system.capitalize() if self.system.islower() else self.system} {self.entity}"


@dataclass(frozen=True)
class Row:
    """One property row: a source expression, a target path, a type, and the way back."""

    source: str
    target: str
    type: RowType
    direction: Direction = Direction.BOTH
    reverse: tuple[tuple[str, str], ...] = ()  # (source path, expression on the target record)
    dataflow: str | None = None  # for type reference
    on_missing: str = "keep"  # for type reference: keep | null | wait, when the record it names is gone
    source_path: str | None = None  # set when `source` is a plain field path
    description: str = ""
    line: int = 0
    wins: bool = False  # writes the properties it shares with another row; the other gives them up
    lookup: str | None = None  # a table of DataflowSpec.lookups: forward by it, back by its inverse
    lookup_unknown: LookupUnknown = LookupUnknown.FAIL
    default: str | int | float | bool | None = None  # written to the target for an empty source value

    def __post_init__(self) -> None:
        # The checker passes the words as read: typed here, once (also for rows made by dataclasses.replace).
        object.__setattr__(self, "type", _member(RowType, self.type))
        object.__setattr__(self, "direction", _member(Direction, self.direction))
        object.__setattr__(self, "lookup_unknown", _member(LookupUnknown, self.lookup_unknown))

    @property
    def flows_forward(self) -> bool:
        return self.direction in {Direction.BOTH, Direction.FORWARD}

    @property
    def flows_back(self) -> bool:
        return self.direction in {Direction.BOTH, Direction.REVERSE}


@dataclass(frozen=True)
class Example:
    name: str
    source: dict[str, Any]
    target: dict[str, Any]
    direction: str = "both"
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class CreateId:
    """How mapsync names a record it creates in a system where the client chooses ids (`create_id:`)."""

    template: str  # placeholders {counter}, {uuid}, {short}, {value} (see sync/create_ids.py)
    expression: str | None = None  # on the record being created, for {value}
    line: int = 0


@dataclass
class DataflowSpec:
    name: str
    file: str
    source: Side
    target: Side
    rows: list[Row]
    title: str = ""
    description: str = ""
    create: str = "target"
    create_ids: dict[str, CreateId] = field(default_factory=dict)  # by the side created in
    timezone: str = "Europe/Oslo"
    conflicts: ConflictPolicy = ConflictPolicy.SOURCE_WINS
    delete_policy: DeletePolicy = DeletePolicy.UNLINK
    delete_max_share: float = 0.1
    match: list[list[str]] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    # Filters (JMESPath on the source / target record): only records for which they are truthy are in scope.
    where: str | None = None
    target_where: str | None = None
    where_line: int = 0  # the lines of `where` and `target_where`, for runtime errors
    target_where_line: int = 0
    examples: list[Example] = field(default_factory=list)
    source_schema: dict[str, Any] = field(default_factory=dict)
    target_schema: dict[str, Any] = field(default_factory=dict)
    # The source side of each dataflow its reference rows name (filled in by the loader): where to look
    # whether a referenced record still exists.
    referenced_sources: dict[str, Side] = field(default_factory=dict)
    # Named lookup tables (`lookups:`): table name -> {key text: value}; see mapping/lookups.py.
    lookups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The loader passes the words as read: typed here, once.
        self.conflicts = _member(ConflictPolicy, self.conflicts)
        self.delete_policy = _member(DeletePolicy, self.delete_policy)

    @property
    def references(self) -> set[str]:
        return {row.dataflow for row in self.rows if row.dataflow}

    @property
    def heading(self) -> str:
        return self.title or f"{self.source.label} to {self.target.label}"


def _member(words: type[_Word], word: str) -> _Word:
    """The member for a word. A word the schema check refused (and reported) is kept as read: the loader
    goes on to find the file's other problems, and a workspace with problems is never synced."""
    try:
        return words(word)
    except ValueError:
        return cast(_Word, word)


@dataclass
class RunSettings:
    """The `run:` section of mapsync.yaml: the schedule of `mapsync run` (checked in spec/run_settings.py)."""

    every: float = 300.0  # seconds between two runs of a dataflow
    full_scan: str | None = None  # a cron expression: when each dataflow's next run rescans everything
    listen: str | None = None  # HOST:PORT of /healthz, /readyz, /metrics and /trigger (off by default)
    trigger_token: str | None = field(default=None, repr=False)  # a secret from the environment: never print it
    dataflows: dict[str, float] = field(default_factory=dict)  # per-dataflow `every`, in seconds

    def every_for(self, name: str) -> float:
        return self.dataflows.get(name, self.every)


@dataclass
class Workspace:
    root: Path
    config_file: Path
    state_url: str
    connections: dict[str, dict[str, Any]]  # settings with ${VAR} resolved: never print these
    dataflows: dict[str, DataflowSpec]  # in dependency order: referenced dataflows first
    run: RunSettings = field(default_factory=RunSettings)  # the `run:` section
    history_keep_days: int = 90  # `history: {keep_days}`: how long the history of every write is kept

    def ordered(self, names: list[str] | None = None) -> list[DataflowSpec]:
        if not names:
            return list(self.dataflows.values())
        return [spec for name, spec in self.dataflows.items() if name in names]
