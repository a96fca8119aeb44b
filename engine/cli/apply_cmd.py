"""`mapsync apply`: performs the sync."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mapsync.cli._app import EXIT_FAILED, cli
from mapsync.cli._render import ApplyProgress, print_summary
from mapsync.cli._workspace import check_dataflows, max_delete_share_option, workspace_from
from mapsync.sync.runner import SyncRun


@cli.command("apply")
@click.option("--dataflow", "dataflows", multiple=True, help="Only this dataflow (repeatable).")
@click.option("--full", is_flag=True, help="Rescan everything (and so notice deletions).")
@click.option("--json-report", type=click.Path(dir_okay=False), help="Write the JSON report to this file.")
@click.option("--wait", "lock_wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another apply on the same state to finish.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop the run after this many seconds: the dataflow being synced stops unfinished (its cursors "
                   "stay), the ones not started are reported as not run, and the exit status is 1.")
@max_delete_share_option
@click.pass_context
def apply(ctx: click.Context, dataflows: tuple[str, ...], full: bool, json_report: str | None, lock_wait: float,
          progress: bool | None, max_delete_share: float | None, max_duration: float | None) -> None:
    """Sync every dataflow (or those named), in dependency order."""
    workspace = workspace_from(ctx)
    show_progress = sys.stderr.isatty() if progress is None else progress
    names = check_dataflows(workspace, dataflows)
    with SyncRun(workspace, dataflows=names, full=full, max_delete_share=max_delete_share) as run, \
            ApplyProgress(show_progress) as bar:
        report = run.apply(lock_wait=lock_wait, progress=bar, max_duration=max_duration)
    if json_report:
        report.write(Path(json_report))
    print_summary(report)
    if report.status != "ok":
        ctx.exit(EXIT_FAILED)
