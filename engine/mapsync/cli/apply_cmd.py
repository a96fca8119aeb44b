"""`mapsync apply`: performs the sync (all of it, some records with --id, or a saved plan with --plan)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mapsync.cli._app import EXIT_FAILED, cli
from mapsync.cli._render import ApplyProgress, headline, print_summary
from mapsync.cli._workspace import check_dataflows, max_delete_share_option, workspace_from
from mapsync.errors import MapsyncError
from mapsync.spec.model import Workspace
from mapsync.sync.report import Report
from mapsync.sync.runner import SyncRun
from mapsync.sync.saved_plan import SavedPlan

if TYPE_CHECKING:
    from mapsync.observe.metrics import Metrics


def _check_id_form(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        dataflow, colon, record_id = value.partition(":")
        if not (colon and dataflow.strip() and record_id.strip()):
            raise click.BadParameter(f"expected DATAFLOW:ID (e.g. kunde-customer:K10001), got {value!r}")
    return values


# Shared by plan and apply: just these records, read by id.
id_option = click.option(
    "--id", "record_ids", multiple=True, metavar="DATAFLOW:ID", callback=_check_id_form,
    help="Only this record (repeatable): a source or a target id of that dataflow. Reads, plans and writes just "
         "it; no other record, and no cursor moves.")


def ids_by_dataflow(workspace: Workspace, record_ids: tuple[str, ...], *, dataflows: tuple[str, ...] = (),
                    full: bool = False) -> dict[str, list[str]] | None:
    """The --id values per dataflow (None without --id); an unknown dataflow is a usage error."""
    if not record_ids:
        return None
    if dataflows or full:
        raise click.BadParameter("plans just the records named: it cannot go with --dataflow or --full",
                                 param_hint="--id")
    by_dataflow: dict[str, list[str]] = {}
    for value in record_ids:
        dataflow, _, record_id = value.partition(":")
        check_dataflows(workspace, (dataflow.strip(),))
        by_dataflow.setdefault(dataflow.strip(), []).append(record_id.strip())
    return by_dataflow


@cli.command("apply")
@click.option("--dataflow", "dataflows", multiple=True, help="Only this dataflow (repeatable).")
@click.option("--full", is_flag=True, help="Rescan everything (and so notice deletions).")
@id_option
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Perform exactly this saved plan (from `mapsync plan --out`): records changed since are left "
                   "out as stale, and a plan for another workspace, other mappings or an older state is refused.")
@click.option("--json-report", type=click.Path(dir_okay=False), help="Write the JSON report to this file.")
@click.option("--wait", "lock_wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another apply on the same state to finish.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop the run after this many seconds: the dataflow being synced stops unfinished (its cursors "
                   "stay), the ones not started are reported as not run, and the exit status is 1.")
@max_delete_share_option
@click.option("--push-metrics", metavar="URL",
              help="After the run, push its metrics to this Prometheus Pushgateway (job mapsync); a push that fails "
                   "is reported and makes the exit status 1.")
@click.pass_context
def apply(ctx: click.Context, dataflows: tuple[str, ...], full: bool, record_ids: tuple[str, ...],
          plan_file: Path | None, json_report: str | None, lock_wait: float, progress: bool | None,
          max_delete_share: float | None, max_duration: float | None, push_metrics: str | None) -> None:
    """Sync every dataflow (or those named), in dependency order."""
    workspace = workspace_from(ctx)
    show_progress = sys.stderr.isatty() if progress is None else progress
    if plan_file is not None:
        run = _saved_plan_run(workspace, plan_file, dataflows=dataflows, full=full, record_ids=record_ids,
                              max_delete_share=max_delete_share)
    else:
        only_ids = ids_by_dataflow(workspace, record_ids, dataflows=dataflows, full=full)
        names = list(only_ids) if only_ids is not None else check_dataflows(workspace, dataflows)
        run = SyncRun(workspace, dataflows=names, full=full, max_delete_share=max_delete_share, only_ids=only_ids)
    with run, ApplyProgress(show_progress) as bar:
        report = run.apply(lock_wait=lock_wait, progress=bar, max_duration=max_duration)
        metrics = _observed(report, run) if push_metrics else None  # the dead letters read before closing
    if json_report:
        report.write(Path(json_report))
    print_summary(report)
    pushed = _push_metrics(metrics, push_metrics)
    if not report.succeeded or not pushed:  # manual conflicts left waiting still exit 0
        ctx.exit(EXIT_FAILED)


def _saved_plan_run(workspace: Workspace, plan_file: Path, *, dataflows: tuple[str, ...], full: bool,
                    record_ids: tuple[str, ...], max_delete_share: float | None) -> SyncRun:
    if dataflows or full or record_ids or max_delete_share is not None:
        raise click.BadParameter("performs the saved plan exactly: it cannot go with --dataflow, --full, --id or "
                                 "--max-delete-share (make the plan with them)", param_hint="--plan")
    saved = SavedPlan.load(plan_file, headline=headline)
    saved.check_workspace(workspace)
    # The plan's dataflows, each limited to its planned records; the state is checked under the locks.
    return SyncRun(workspace, dataflows=list(saved.dataflows), max_delete_share=saved.max_delete_share,
                   only_ids=saved.only_ids(), screen=saved)


def _observed(report: Report, run: SyncRun) -> Metrics:
    from mapsync.observe.metrics import Metrics

    metrics = Metrics()
    metrics.observe_report(report, run.store, expected=[spec.name for spec in run.specs])
    return metrics


def _push_metrics(metrics: Metrics | None, url: str | None) -> bool:
    """apply --push-metrics: False, after one line on stderr, when the push failed."""
    if metrics is None or url is None:
        return True
    try:
        metrics.push(url)
    except MapsyncError as exc:
        click.echo(f"error: {exc}", err=True)
        return False
    return True
