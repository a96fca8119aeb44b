"""Record-level actions: what a plan holds, `plan` prints and `apply` performs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mapsync.state.base import Link

# Kinds of action. Writes: create, update, delete. Bookkeeping: link (new match), unlink, relink (a record
# that came back gets its retired link again).
# Reported only: conflict (manual), defer (a reference not linked yet), ambiguous (match), fail, missing (an
# id asked for by --id found on neither side), stale (a saved plan's record changed since it was planned).
WRITES = frozenset({"create", "update", "delete"})
CHANGES = frozenset({"create", "update", "delete", "link", "unlink", "relink"})


@dataclass(frozen=True)
class ConflictInfo:
    prop: str
    base: Any
    source_value: Any
    target_value: Any
    resolution: str  # "source", "target" or "manual"


@dataclass
class Action:
    kind: str
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
    status: int | None = None  # for fail: the HTTP status, where there was one
    # Why a record synced other than it would have (a reference row's record gone: `on_missing`); written
    # to the ledger once, as a note: the record is not failed.
    note: str = ""
    noted: bool = False  # the ledger holds this note already

    @property
    def writes(self) -> bool:
        return self.kind in WRITES or bool(self.target_changes or self.source_changes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.kind, "dataflow": self.dataflow, "source_id": self.source_id,
                               "target_id": self.target_id}
        if self.kind in {"create", "delete"}:
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


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def describe(action: Action, source_entity: str, target_entity: str) -> list[str]:
    """Human lines for one action, as `mapsync plan` prints them."""
    src = f"{source_entity} {action.source_id}" if action.source_id else source_entity
    tgt = f"{target_entity} {action.target_id}" if action.target_id else target_entity
    name = f" {show(action.label)}" if action.label else ""
    head = {
        "create": f"+ create {target_entity} from {src}{name}" if action.side == "target"
        else f"+ create {source_entity} from {tgt}{name}",
        "update": f"~ update {src} <-> {tgt}{name}",
        "link": f"= link {src} <-> {tgt}{name} (matched)",
        "relink": f"= relink {src} <-> {tgt}{name} (came back)",
        "delete": f"- delete {tgt} ({src} is gone)" if action.side == "target"
        else f"- delete {src} ({tgt} is gone)",
        "unlink": f"- unlink {src} <-> {tgt}",
        "conflict": f"! conflict {src} <-> {tgt}{name}",
        "defer": f"? wait {src}{name}",
        "ambiguous": f"? ambiguous {src}{name}",
        "fail": f"x fail {src}{name}",
        "guard": "x refused: mass delete",
        "missing": "x not found",
        "stale": f"x stale {src} <-> {tgt}{name}" if action.target_id else f"x stale {src}{name}",
    }.get(action.kind, f"{action.kind} {src} {tgt}")
    lines = [head]
    for prop, (old, new) in action.target_changes.items():
        lines.append(f"    {target_entity}.{prop}: {show(old)} -> {show(new)}")
    for prop, (old, new) in action.source_changes.items():
        lines.append(f"    {source_entity} <- {prop}: {show(old)} -> {show(new)}")
    for c in action.conflicts:
        lines.append(f"    conflict on {c.prop}: source {show(c.source_value)}, target {show(c.target_value)}"
                     f" (was {show(c.base)}) -> {c.resolution}")
    if action.reason:
        lines.append(f"    {action.reason}")
    if action.note:
        lines.append(f"    note: {action.note}")
    return lines
