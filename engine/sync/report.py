"""What a run did: counts per dataflow and in total, requests per connection, and the status."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COUNT_KEYS = ("created", "updated", "deleted", "unchanged", "conflicts", "failed", "deferred", "linked",
              "unlinked")


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    conflicts: int = 0
    failed: int = 0
    deferred: int = 0
    linked: int = 0
    unlinked: int = 0

    def add(self, other: Counts) -> None:
        for key in COUNT_KEYS:
            setattr(self, key, getattr(self, key) + getattr(other, key))

    @property
    def records(self) -> int:
        return self.created + self.updated + self.deleted + self.unchanged + self.failed + self.deferred \
            + self.linked + self.unlinked

    @property
    def writes_pending(self) -> int:
        return self.created + self.updated + self.deleted + self.linked + self.unlinked


@dataclass
class DataflowReport:
    name: str
    counts: Counts = field(default_factory=Counts)
    errors: list[str] = field(default_factory=list)
    aborted: bool = False  # the dataflow could not be read or planned at all

    @property
    def status(self) -> str:
        if self.aborted:
            return "failed"
        return "partial" if self.counts.failed or self.counts.deferred or self.errors else "ok"


@dataclass
class Report:
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    dataflows: dict[str, DataflowReport] = field(default_factory=dict)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # run-level: lock, connections

    def dataflow(self, name: str) -> DataflowReport:
        return self.dataflows.setdefault(name, DataflowReport(name))

    @property
    def total(self) -> Counts:
        total = Counts()
        for report in self.dataflows.values():
            total.add(report.counts)
        return total

    @property
    def status(self) -> str:
        states = {r.status for r in self.dataflows.values()}
        if self.errors and not self.dataflows:
            return "failed"
        if states and states == {"failed"}:
            return "failed"
        if self.errors or states - {"ok"}:
            return "partial"
        return "ok"

    @property
    def duration(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": (self.finished_at or datetime.now(UTC)).isoformat(),
            "duration_seconds": round(self.duration, 3),
            "dataflows": {name: {**asdict(r.counts), "status": r.status, "errors": r.errors}
                          for name, r in self.dataflows.items()},
            "total": asdict(self.total),
            "requests": self.requests,
            "errors": self.errors,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
