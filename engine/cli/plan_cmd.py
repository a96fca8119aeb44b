"""`mapsync plan`: the record-level actions a sync would take; changes nothing."""

from __future__ import annotations

import json

import click

from mapsync.cli._app import EXIT_FAILED, EXIT_PENDING, cli
from mapsync.cli._workspace import check_dataflows, workspace_from
from mapsync.sync.actions import describe
from mapsync.sync.report import Counts
from mapsync.sync.runner import PlannedDataflow, SyncRun


@cli.command("plan")
@click.option("--dataflow", "dataflows", multiple=True, help="Only this dataflow (repeatable).")
@click.option("--full", is_flag=True, help="Rescan everything (and so notice deletions).")
@click.option("--exit-code", is_flag=True, help="Exit 3 when changes are pending.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_context
def plan(ctx: click.Context, dataflows: tuple[str, ...], full: bool, exit_code: bool, as_json: bool) -> None:
    """Read both systems and print what apply would do, record by record."""
    workspace = workspace_from(ctx)
    with SyncRun(workspace, dataflows=check_dataflows(workspace, dataflows), full=full) as run:
        planned = list(run.plan())
    total = Counts()
    for item in planned:
        total.add(item.counts)
    if as_json:
        click.echo(json.dumps(_plan_json(planned, total), indent=2, ensure_ascii=False))
    else:
        for item in planned:
            _print_dataflow(item)
        click.echo(_summary_line("plan", total))
    if any(item.error for item in planned):
        ctx.exit(EXIT_FAILED)
    if exit_code and total.writes_pending:
        ctx.exit(EXIT_PENDING)


def _print_dataflow(item: PlannedDataflow) -> None:
    spec = item.spec
    click.echo(f"{spec.name}: {spec.source.label} -> {spec.target.label}")
    if item.error:
        click.echo(f"  error: {item.error}", err=True)
    for action in item.actions:
        for line in describe(action, spec.source.entity, spec.target.entity):
            click.echo(f"  {line}")
    click.echo(f"  {_summary_line('', item.counts).strip()}")
    click.echo("")


def _summary_line(prefix: str, counts: Counts) -> str:
    parts = [f"{counts.created} to create", f"{counts.updated} to update", f"{counts.deleted} to delete",
             f"{counts.linked} to link", f"{counts.unlinked} to unlink", f"{counts.unchanged} unchanged",
             f"{counts.conflicts} conflicts", f"{counts.deferred} waiting", f"{counts.failed} failing"]
    return f"{prefix}: {', '.join(parts)}" if prefix else ", ".join(parts)


def _plan_json(planned: list[PlannedDataflow], total: Counts) -> dict[str, object]:
    return {
        "dataflows": {item.spec.name: {"counts": vars(item.counts), "error": item.error or None,
                                       "actions": [a.to_json() for a in item.actions]} for item in planned},
        "total": vars(total),
        "pending": total.writes_pending > 0,
    }
