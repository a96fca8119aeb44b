"""The three-way merge of one linked pair, property by property, against the last-synced values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapsync.spec.model import Row
from mapsync.sync.actions import ConflictInfo

_MISSING = object()


@dataclass
class MergeResult:
    to_target: dict[str, Any] = field(default_factory=dict)  # target path -> new canonical value
    to_source: dict[str, Any] = field(default_factory=dict)  # target path -> value flowing back
    conflicts: list[ConflictInfo] = field(default_factory=list)

    @property
    def manual(self) -> list[ConflictInfo]:
        return [c for c in self.conflicts if c.resolution == "manual"]


def merge(rows: list[Row], *, base_source: dict[str, Any] | None, base_target: dict[str, Any] | None,
          source: dict[str, Any], target: dict[str, Any], policy: str, newer: str | None = None) -> MergeResult:
    """Decide, per row, what flows where.

    A side changed a property when its value differs from what that side held at the last sync
    (`base_*`; None for a pair never synced, where every difference counts as a change on both sides).
    One-sided changes flow to the other side; different changes on both sides are conflicts settled by
    `policy`; `newer` ("source"/"target") says which side was edited last, for newest-wins.
    """
    result = MergeResult()
    for row in rows:
        path = row.target
        s_value, t_value = source.get(path), target.get(path)
        if s_value == t_value:
            continue
        s_changed = base_source is None or base_source.get(path, _MISSING) != s_value
        t_changed = base_target is None or base_target.get(path, _MISSING) != t_value
        s_changed = s_changed and row.flows_forward
        t_changed = t_changed and row.flows_back
        if s_changed and not t_changed:
            result.to_target[path] = s_value
        elif t_changed and not s_changed:
            result.to_source[path] = t_value
        elif s_changed and t_changed:
            base = None if base_source is None else base_source.get(path)
            winner = _settle(policy, newer)
            result.conflicts.append(ConflictInfo(path, base, s_value, t_value, winner))
            if winner == "source":
                result.to_target[path] = s_value
            elif winner == "target":
                result.to_source[path] = t_value
    return result


def _settle(policy: str, newer: str | None) -> str:
    if policy == "source-wins":
        return "source"
    if policy == "target-wins":
        return "target"
    if policy == "newest-wins":
        return newer or "source"
    return "manual"
