"""`mapsync plan`: the record-level actions a sync would take; changes nothing."""

from __future__ import annotations

import json

import click

from mapsync.cli._app import EXIT_FAILED, EXIT_PENDING, cli
from mapsync.cli._workspace import check_dataflows, max_delete_share_option, workspace_from
from mapsync.spec.model import DataflowSpec
from mapsync.sync.actions import Action, describe
from mapsync.sync.report import Counts
from mapsync.sync.runner import PlannedDataflow, SyncRun


@cli.command("plan")
@click.option("--dataflow", "dataflows", multiple=True, help="Only this dataflow (repeatable).")
@click.option("--full", is_flag=True, help="Rescan everything (and so notice deletions).")
@click.option("--exit-code", is_flag=True, help="Exit 3 when changes are pending.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@max_delete_share_option
@click.pass_context
def plan(ctx: click.Context, dataflows: tuple[str, ...], full: bool, exit_code: bool, as_json: bool,
         max_delete_share: float | None) -> None:
    """Read both systems and print what apply would do, record by record."""
    workspace = workspace_from(ctx)
    actions: dict[str, list[dict[str, object]]] = {}
    heading = _Heading()

    def on_action(spec: DataflowSpec, action: Action) -> None:
        if as_json:
            actions.setdefault(spec.name, []).append(action.to_json())
            return
        heading.show(spec)
        for line in describe(action, spec.source.entity, spec.target.entity):
            click.echo(f"  {line}")

    with SyncRun(workspace, dataflows=check_dataflows(workspace, dataflows), full=full,
                 max_delete_share=max_delete_share) as run:
        planned = []
        for item in run.plan(on_action):
            planned.append(item)
            if not as_json:
                heading.show(item.spec)
                _print_end_of_dataflow(item)
    total = Counts()
    for item in planned:
        total.add(item.counts)
    if as_json:
        click.echo(json.dumps(_plan_json(planned, actions, total), indent=2, ensure_ascii=False))
    else:
        click.echo(_summary_line("plan", total))
    if any(item.error for item in planned):
        ctx.exit(EXIT_FAILED)
    if exit_code and total.writes_pending:
        ctx.exit(EXIT_PENDING)


class _Heading:
    """Prints a dataflow's heading once, before its first line."""

    def __init__(self) -> None:
        self.shown: set[str] = set()

    def show(self, spec: DataflowSpec) -> None:
        if spec.name not in self.shown:
            self.shown.add(spec.name)
            click.echo(f"{spec.name}: {spec.source.label} -> {spec.target.label}")


def _print_end_of_dataflow(item: PlannedDataflow) -> None:
    if item.error:
        click.echo(f"  error: {item.error}", err=True)
    click.echo(f"  {_summary_line('', item.counts).strip()}")
    click.echo("")


def _summary_line(prefix: str, counts: Counts) -> str:
    parts = [f"{counts.created} to create", f"{counts.updated} to update", f"{counts.deleted} to delete",
             f"{counts.linked} to link", f"{counts.unlinked} to unlink", f"{counts.unchanged} unchanged",
             f"{counts.conflicts} conflicts", f"{counts.deferred} waiting", f"{counts.failed} failing"]
    return f"{prefix}: {', '.join(parts)}" if prefix else ", ".join(parts)


def _plan_json(planned: list[PlannedDataflow], actions: dict[str, list[dict[str, object]]],
               total: Counts) -> dict[str, object]:
    return {
        "dataflows": {item.spec.name: {"counts": vars(item.counts), "error": item.error or None,
                                       "actions": actions.get(item.spec.name, [])} for item in planned},
        "total": vars(total),
        "pending": total.writes_pending > 0,
    }
