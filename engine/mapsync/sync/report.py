"""What a run did: counts per dataflow and in total, requests per connection, and the status."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mapsync.state.base import Conflict

COUNT_KEYS = ("created", "updated", "deleted", "unchanged", "conflicts", "failed", "deferred", "linked",
              "unlinked", "stale")


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
    stale: int = 0  # apply --plan: records changed since the plan was made, not written

    def add(self, other: Counts) -> None:
        for key in COUNT_KEYS:
            setattr(self, key, getattr(self, key) + getattr(other, key))

    @property
    def records(self) -> int:
        return self.created + self.updated + self.deleted + self.unchanged + self.failed + self.deferred \
            + self.linked + self.unlinked + self.stale

    @property
    def writes_pending(self) -> int:
        return self.created + self.updated + self.deleted + self.linked + self.unlinked


@dataclass
class DataflowReport:
    name: str
    counts: Counts = field(default_factory=Counts)
    errors: list[str] = field(default_factory=list)
    aborted: bool = False  # the dataflow could not be read or planned at all
    # Manual conflicts waiting for a person after the run (new or not), and the first of them in full.
    conflicts_waiting: int = 0
    waiting: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0  # seconds the runner spent on this dataflow (its metrics histogram)

    @property
    def status(self) -> str:
        if self.aborted:
            return "failed"
        if self.counts.failed or self.counts.deferred or self.counts.stale or self.errors:
            return "partial"
        return "conflicts" if self.conflicts_waiting else "ok"

    def note_waiting(self, conflicts: Iterable[Conflict]) -> None:
        self.waiting.clear()
        self.conflicts_waiting = 0
        for conflict in conflicts:
            self.conflicts_waiting += 1
            if len(self.waiting) < WAITING_LISTED:
                self.waiting.append(conflict_row(conflict))


# At most this many waiting conflicts per dataflow are listed in full (all are counted).
WAITING_LISTED = 100
# A run's status, worst first: `conflicts` is a run that synced everything but leaves manual conflicts
# waiting for a person; apply still exits 0 for it.
SUCCEEDED = frozenset({"ok", "conflicts"})


def conflict_row(conflict: Conflict) -> dict[str, Any]:
    """A waiting manual conflict as the JSON report and `links conflicts --json` give it."""
    return {"dataflow": conflict.dataflow, "source_id": conflict.source_id, "target_id": conflict.target_id,
            "property": conflict.prop, "base": conflict.base, "source_value": conflict.source_value,
            "target_value": conflict.target_value, "since": conflict.detected_at}


@dataclass
class Report:
    # One id per run: it names the run in the JSON report, the logs and the history of every write.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    dataflows: dict[str, DataflowReport] = field(default_factory=dict)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    # Per connection, method and answer status ("200", or "error"/"timeout" for no answer): for metrics.
    request_statuses: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # run-level: lock, connections
    max_delete_share: float | None = None  # apply --max-delete-share, for this run (None: each mapping's)
    lock_held: bool = False  # nothing ran: another run holds a lock this one needs (see errors)

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
        if self.errors or states - SUCCEEDED:
            return "partial"
        return "conflicts" if "conflicts" in states else "ok"

    @property
    def succeeded(self) -> bool:
        """Everything synced (manual conflicts may wait): apply exits 0."""
        return self.status in SUCCEEDED

    @property
    def conflicts_waiting(self) -> int:
        return sum(r.conflicts_waiting for r in self.dataflows.values())

    @property
    def duration(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": (self.finished_at or datetime.now(UTC)).isoformat(),
            "duration_seconds": round(self.duration, 3),
            "max_delete_share": self.max_delete_share,
            "dataflows": {name: {**asdict(r.counts), "status": r.status, "conflicts_waiting": r.conflicts_waiting,
                                 "duration_seconds": round(r.duration, 3), "errors": r.errors}
                          for name, r in self.dataflows.items()},
            "total": asdict(self.total),
            "conflicts_waiting": self.conflicts_waiting,
            "waiting_conflicts": [c for r in self.dataflows.values() for c in r.waiting],
            "requests": self.requests,
            "errors": self.errors,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
