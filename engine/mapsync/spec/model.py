"""The validated, typed form of mapsync.yaml and the mapping files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
        return self.direction in {"both", "forward"}

    @property
    def flows_back(self) -> bool:
        return self.direction in {"both", "reverse"}


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
    conflicts: str = "source-wins"
    delete_policy: str = "unlink"  # unlink | recreate | propagate | ignore
    delete_max_share: float = 0.1
    match: list[list[str]] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    source_schema: dict[str, Any] = field(default_factory=dict)
    target_schema: dict[str, Any] = field(default_factory=dict)
    # The source side of each dataflow its reference rows name (filled in by the loader): where to look
    # whether a referenced record still exists.
    referenced_sources: dict[str, Side] = field(default_factory=dict)

    @property
    def references(self) -> set[str]:
        return {row.dataflow for row in self.rows if row.dataflow}

    @property
    def heading(self) -> str:
        return self.title or f"{self.source.label} to {self.target.label}"


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
