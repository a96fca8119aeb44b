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
    type: str
    direction: str = "both"  # both | forward | reverse
    reverse: tuple[tuple[str, str], ...] = ()  # (source path, expression on the target record)
    dataflow: str | None = None  # for type reference
    on_missing: str = "keep"  # for type reference: keep | null | wait, when the record it names is gone
    source_path: str | None = None  # set when `source` is a plain field path
    description: str = ""
    line: int = 0
    wins: bool = False  # writes the properties it shares with another row; the other gives them up

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
    timezone: str = "Europe/Oslo"
    conflicts: ConflictPolicy = ConflictPolicy.SOURCE_WINS
    delete_policy: DeletePolicy = DeletePolicy.UNLINK
    delete_max_share: float = 0.1
    match: list[list[str]] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    source_schema: dict[str, Any] = field(default_factory=dict)
    target_schema: dict[str, Any] = field(default_factory=dict)
    # The source side of each dataflow its reference rows name (filled in by the loader): where to look
    # whether a referenced record still exists.
    referenced_sources: dict[str, Side] = field(default_factory=dict)

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
class Workspace:
    root: Path
    config_file: Path
    state_url: str
    connections: dict[str, dict[str, Any]]  # settings with ${VAR} resolved: never print these
    dataflows: dict[str, DataflowSpec]  # in dependency order: referenced dataflows first

    def ordered(self, names: list[str] | None = None) -> list[DataflowSpec]:
        if not names:
            return list(self.dataflows.values())
        return [spec for name, spec in self.dataflows.items() if name in names]
