"""Terminal output shared by plan and apply: the action lines, the summary table, the progress bar."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mapsync.sync.actions import Action
from mapsync.sync.report import Report
from mapsync.sync.runner import summary_rows

SUMMARY_COLUMNS = ("created", "updated", "deleted", "unchanged", "conflicts", "failed", "deferred", "linked",
                   "unlinked")


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
