"""Terminal output shared by plan and apply: the action lines, the summary table, the progress bar."""

from __future__ import annotations

import sys
from types import TracebackType

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
    for error in [*report.errors, *(e for r in report.dataflows.values() for e in r.errors)]:
        click.echo(f"error: {error}", err=True)


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
