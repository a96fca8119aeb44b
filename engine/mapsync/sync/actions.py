"""Record-level actions: what a plan holds, `plan` prints (cli/_render) and `apply` performs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from mapsync.state.base import Link


class ActionKind(enum.StrEnum):
    """What the planner decided for one record. A StrEnum: saved plans and JSON reports hold the plain
    words, so a value is its own text form and never changes."""

    # Writes
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    # Bookkeeping: a new match, a link removed, a record that came back gets its retired link again
    LINK = "link"
    RELINK = "relink"
    UNLINK = "unlink"
    # Nothing to write: in sync, or both sides agree and only the link's record of them is stale
    UNCHANGED = "unchanged"
    REFRESH = "refresh"
    # Reported only: a manual conflict, a reference not linked yet, an ambiguous match, a failed record,
    # the delete guard tripped, an id asked for by --id found on neither side, a saved plan's record that
    # changed since it was planned, a queued record gone from the source since it failed
    CONFLICT = "conflict"
    DEFER = "defer"
    AMBIGUOUS = "ambiguous"
    FAIL = "fail"
    GUARD = "guard"
    MISSING = "missing"
    STALE = "stale"
    DROP = "drop"


WRITES = frozenset({ActionKind.CREATE, ActionKind.UPDATE, ActionKind.DELETE})
CHANGES = WRITES | {ActionKind.LINK, ActionKind.UNLINK, ActionKind.RELINK}


@dataclass(frozen=True)
class ConflictInfo:
    prop: str
    base: Any
    source_value: Any
    target_value: Any
    resolution: str  # "source", "target" or "manual"


@dataclass(frozen=True)
class Action:
    """Built whole by the planner (frozen): the executor's verdict on it lives in its Outcome."""

    kind: ActionKind
    dataflow: str
    source_id: str | None = None
    target_id: str | None = None
    side: str = "target"  # for create/delete: the side written
    label: str = ""  # a human hint: the record's name
    # canonical per target path: (old, new) for each side it changes
    target_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    source_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    conflicts: list[ConflictInfo] = field(default_factory=list)
    reason: str = ""
    # what the executor needs; not printed
    source_record: dict[str, Any] | None = None
    target_record: dict[str, Any] | None = None
    source_values: dict[str, Any] = field(default_factory=dict)  # canonical projection of the source now
    target_values: dict[str, Any] = field(default_factory=dict)  # canonical projection of the target now
    link: Link | None = None
    source_modified: str | None = None  # the source record's change marker when it was read
    queued: bool = False  # the record was in the dead-letter ledger (or a pending create) at the start
    idempotency_key: str | None = None  # for a create that a crash or timeout cut short: its earlier key
    # A create in the target: the body to send, built (and checked) once by the planner; None: the
    # executor builds it. Not part of the action's identity.
    body: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    status: int | None = None  # for fail: the HTTP status, where there was one
    # Why a record synced other than it would have (a reference row's record gone: `on_missing`); written
    # to the ledger once, as a note: the record is not failed.
    note: str = ""
    noted: bool = False  # the ledger holds this note already

    @property
    def writes(self) -> bool:
        return self.kind in WRITES or bool(self.target_changes or self.source_changes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": str(self.kind), "dataflow": self.dataflow, "source_id": self.source_id,
                               "target_id": self.target_id}
        if self.kind in {ActionKind.CREATE, ActionKind.DELETE}:
            out["side"] = self.side
        if self.label:
            out["label"] = self.label
        if self.target_changes:
            out["target_changes"] = {k: {"old": o, "new": n} for k, (o, n) in self.target_changes.items()}
        if self.source_changes:
            out["source_changes"] = {k: {"old": o, "new": n} for k, (o, n) in self.source_changes.items()}
        if self.conflicts:
            out["conflicts"] = [{"property": c.prop, "base": c.base, "source": c.source_value,
                                 "target": c.target_value, "resolution": c.resolution} for c in self.conflicts]
        if self.reason:
            out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        return out
