"""The three-way merge of one linked pair, property by property, against the last-synced values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, assert_never

from mapsync.spec.model import ConflictPolicy, Row
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
          source: dict[str, Any], target: dict[str, Any], policy: ConflictPolicy,
          newer: str | None = None) -> MergeResult:
    """Decide, per row, what flows where.

    A side changed a property when its value differs from what that side held at the last sync
    (`base_*`; None for a pair never synced, see below). One-sided changes flow to the other side;
    different changes on both sides are conflicts settled by `policy`; `newer` ("source"/"target") says
    which side was edited last, for newest-wins.

    A pair never synced (matched at onboarding) has no base: a value on one side and nothing on the other
    fills the empty side, and only two different values are a conflict.
    """
    result = MergeResult()
    for row in rows:
        path = row.target
        s_value, t_value = source.get(path), target.get(path)
        if s_value == t_value:
            continue
        if base_source is None and base_target is None and (_empty(s_value) or _empty(t_value)):
            _fill_empty_side(result, row, s_value, t_value)
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


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _fill_empty_side(result: MergeResult, row: Row, s_value: Any, t_value: Any) -> None:
    """At onboarding, the side holding a value fills the empty one, where the row flows that way; an empty
    value never erases one."""
    if _empty(s_value) and _empty(t_value):
        return
    if _empty(t_value) and row.flows_forward:
        result.to_target[row.target] = s_value
    elif _empty(s_value) and row.flows_back:
        result.to_source[row.target] = t_value


def _settle(policy: ConflictPolicy, newer: str | None) -> str:
    match policy:
        case ConflictPolicy.SOURCE_WINS:
            return "source"
        case ConflictPolicy.TARGET_WINS:
            return "target"
        case ConflictPolicy.NEWEST_WINS:
            return newer or "source"
        case ConflictPolicy.MANUAL:
            return "manual"
        case _:
            assert_never(policy)
