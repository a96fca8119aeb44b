"""Which row writes which property: two rows writing the same one (or one inside the other) must say which wins.

A row writes its target path when it flows forward, and when it flows back the source field it is (a plain
row) or the fields its `reverse` names. Two rows writing overlapping properties on the same side would
overwrite each other on every run, so the pair never settles; the row marked `wins: true` keeps the write
and the other gives it up. Giving it up is settled here, on the rows themselves, so that the mapper, the
merge, creates and the generated documents all see one answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mapsync.spec._expression import shown
from mapsync.spec.model import Direction, Row

SOURCE, TARGET = "source", "target"


@dataclass(frozen=True)
class Problem:
    position: int  # index of the row the problem is reported at, in the list given
    message: str


def writes(row: Row) -> list[tuple[str, str]]:
    """(side, property path) of every property the row writes."""
    found: list[tuple[str, str]] = []
    if row.flows_forward and row.target:
        found.append((TARGET, row.target))
    if row.flows_back:
        if row.source_path is not None:
            found.append((SOURCE, row.source_path))
        else:
            found.extend((SOURCE, path) for path, _ in row.reverse)
    return found


def overlap(a: str, b: str) -> bool:
    """Whether writing one path writes (part of) the other: equal, or one an object holding the other."""
    parts_a, parts_b = a.split("."), b.split(".")
    shorter = min(len(parts_a), len(parts_b))
    return parts_a[:shorter] == parts_b[:shorter]


def describe(row: Row) -> str:
    source = row.source_path if row.source_path is not None else shown(row.source)
    return f"{source} -> {row.target}"


def settle_shared_writes(rows: list[Row], side_labels: dict[str, str]) -> tuple[list[Row], list[Problem]]:
    """The rows with every write a losing row gives up removed, and the clashes no `wins` settles.

    Equal target paths are left alone: the duplicate-target check reports them, and `wins` cannot settle
    them (the values of a pair are kept per target path).
    """
    problems: list[Problem] = []
    given_up: dict[int, set[tuple[str, str]]] = {}
    planned = [writes(row) for row in rows]
    for j, later in enumerate(rows):
        unsettled: dict[tuple[str, bool], list[tuple[int, str, str]]] = {}
        for i, earlier in enumerate(rows[:j]):
            for side, path_i, path_j in _shared(planned[i], planned[j]):
                if side == TARGET and path_i == path_j:
                    continue
                if earlier.wins == later.wins:
                    unsettled.setdefault((side, later.wins), []).append((i, path_i, path_j))
                elif earlier.wins:
                    given_up.setdefault(j, set()).add((side, path_j))
                else:
                    given_up.setdefault(i, set()).add((side, path_i))
        for (side, both_win), clashes in unsettled.items():
            earlier_rows = [rows[i] for i in dict.fromkeys(i for i, _, _ in clashes)]
            problems.append(Problem(j, _clash(later, earlier_rows, side_labels[side],
                                              sorted({p for _, a, b in clashes for p in (a, b)}), both_win)))
    settled = list(rows)
    for position, lost in given_up.items():
        row = _without(rows[position], lost)
        if not writes(row):
            problems.append(Problem(position, f"this row ({describe(rows[position])}) writes nothing: the rows "
                                              "marked `wins: true` write every property it does; remove it"))
        settled[position] = row
    return settled, problems


def _clash(later: Row, earlier: list[Row], side: str, paths: list[str], both_win: bool) -> str:
    others = (f"the row on line {earlier[0].line} ({describe(earlier[0])})" if len(earlier) == 1
              else "the rows on lines " + _listed([str(row.line) for row in earlier]))
    where = (f"{side} property {paths[0]!r}" if len(paths) == 1
             else f"{side} properties {_listed([repr(p) for p in paths])} (one inside another)")
    every = "both" if len(earlier) == 1 else "all"
    if both_win:
        return f"this row ({describe(later)}) and {others} {every} write {where} with `wins: true`: keep it on one row"
    return (f"this row ({describe(later)}) and {others} {every} write {where}, so they would overwrite each other: "
            "mark the row that should write it with `wins: true`")


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _shared(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    return [(side_a, path_a, path_b) for side_a, path_a in a for side_b, path_b in b
            if side_a == side_b and overlap(path_a, path_b)]


def _without(row: Row, lost: set[tuple[str, str]]) -> Row:
    """The row no longer writing the lost properties: a direction narrowed, or reverse entries dropped."""
    forward = row.flows_forward and (TARGET, row.target) not in lost
    reverse = tuple((path, expr) for path, expr in row.reverse if (SOURCE, path) not in lost)
    back = row.flows_back and (reverse if row.source_path is None else (SOURCE, row.source_path) not in lost)
    direction = (Direction.BOTH if forward and back else Direction.FORWARD if forward
                 else Direction.REVERSE if back else Direction.NONE)
    return replace(row, direction=direction, reverse=reverse)
