"""Terminal output shared by plan and apply: the action lines, the summary table, the progress bar.

The one place an action becomes text (`action_lines`, `headline`): every kind is matched, and mypy checks
that none is left out."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, assert_never

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.report import Report
from mapsync.sync.runner import summary_rows

SUMMARY_COLUMNS = ("created", "updated", "deleted", "unchanged", "conflicts", "failed", "deferred", "linked",
                   "unlinked")


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def headline(action: Action, source_entity: str, target_entity: str) -> str:  # noqa: PLR0911, PLR0912
    """An action's first line, as `mapsync plan` prints it (a stale record's reason quotes it too): one case
    per kind, so the many returns and branches (the noqa) are the exhaustive match itself."""
    src = f"{source_entity} {action.source_id}" if action.source_id else source_entity
    tgt = f"{target_entity} {action.target_id}" if action.target_id else target_entity
    name = f" {show(action.label)}" if action.label else ""
    match action.kind:
        case ActionKind.CREATE:
            if action.side == "target":
                return f"+ create {target_entity} from {src}{name}"
            return f"+ create {source_entity} from {tgt}{name}"
        case ActionKind.UPDATE:
            return f"~ update {src} <-> {tgt}{name}"
        case ActionKind.LINK:
            return f"= link {src} <-> {tgt}{name} (matched)"
        case ActionKind.RELINK:
            return f"= relink {src} <-> {tgt}{name} (came back)"
        case ActionKind.DELETE:
            return f"- delete {tgt} ({src} is gone)" if action.side == "target" else f"- delete {src} ({tgt} is gone)"
        case ActionKind.UNLINK:
            return f"- unlink {src} <-> {tgt}"
        case ActionKind.CONFLICT:
            return f"! conflict {src} <-> {tgt}{name}"
        case ActionKind.DEFER:
            return f"? wait {src}{name}"
        case ActionKind.AMBIGUOUS:
            return f"? ambiguous {src}{name}"
        case ActionKind.FAIL:
            return f"x fail {src}{name}"
        case ActionKind.GUARD:
            return "x refused: mass delete"
        case ActionKind.MISSING:
            return "x not found"
        case ActionKind.STALE:
            return f"x stale {src} <-> {tgt}{name}" if action.target_id else f"x stale {src}{name}"
        case ActionKind.UNCHANGED | ActionKind.REFRESH | ActionKind.DROP:
            return f"{action.kind} {src} {tgt}"
        case _:
            assert_never(action.kind)


def action_lines(action: Action, source_entity: str, target_entity: str) -> list[str]:
    """Human lines for one action, as `mapsync plan` prints them: the headline, then what changes."""
    lines = [headline(action, source_entity, target_entity)]
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


def summary_table(report: Report) -> Table:
    table = Table(title=f"mapsync apply: {report.status} in {report.duration:.1f} s")
    table.add_column("dataflow")
    for column in SUMMARY_COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("status")
    for row in summary_rows(report):
        table.add_row(str(row["dataflow"]), *(str(row[c]) for c in SUMMARY_COLUMNS), str(row["status"]))
    return table


def print_summary(report: Report) -> None:
    # Wide enough for every column even when stdout is a pipe (rich would assume 80 columns).
    console = Console(file=sys.stdout, width=max(140, Console().width) if not sys.stdout.isatty() else None)
    console.print(summary_table(report))
    for name, connection in sorted(report.requests.items()):
        parts = ", ".join(f"{method} {n}" for method, n in sorted(connection.items()) if n)
        console.print(f"requests to {name}: {parts or 'none'}")
    if report.max_delete_share is not None:
        console.print(f"max delete share: {report.max_delete_share:g} (--max-delete-share, for this run)")
    if report.conflicts_waiting:
        waiting = report.conflicts_waiting
        console.print(f"{waiting} manual conflict{'s' if waiting != 1 else ''} waiting for a person: "
                      f"see `mapsync links conflicts`, settle with `mapsync links resolve`")
    for error in [*report.errors, *(e for r in report.dataflows.values() for e in r.errors)]:
        click.echo(f"error: {error}", err=True)


def print_listing(title: str, keys: Sequence[str], rows: Iterable[dict[str, Any]], *, as_json: bool) -> None:
    """A listing (`mapsync links ...`): a table of `keys`, or with --json a JSON array of objects with
    exactly those keys (stable: scripts read them)."""
    if as_json:
        click.echo(json.dumps([{k: row[k] for k in keys} for row in rows], ensure_ascii=False, indent=2))
        return
    table = Table(title=title)
    for key in keys:
        table.add_column(key.replace("_", " "))
    for row in rows:
        table.add_row(*(v if isinstance(v := row[k], str) else json.dumps(v, ensure_ascii=False) for k in keys))
    Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None).print(table)


class ApplyProgress:
    """A live progress line per dataflow on a terminal; silent when stderr is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed} records"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=False)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ApplyProgress:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.enabled:
            self.progress.stop()

    def __call__(self, dataflow: str, action: Action) -> None:
        if not self.enabled:
            return
        if dataflow not in self.tasks:
            self.tasks[dataflow] = self.progress.add_task(dataflow, total=None)
        self.progress.advance(self.tasks[dataflow])
