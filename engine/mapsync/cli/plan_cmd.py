"""`mapsync plan`: the record-level actions a sync would take; changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mapsync.cli._app import EXIT_FAILED, EXIT_PENDING, cli
from mapsync.cli._render import action_lines
from mapsync.cli._workspace import check_dataflows, max_delete_share_option, workspace_from
from mapsync.cli.apply_cmd import id_option, ids_by_dataflow
from mapsync.spec.model import DataflowSpec, Workspace
from mapsync.sync.actions import Action
from mapsync.sync.report import Counts
from mapsync.sync.runner import PlannedDataflow, SyncRun
from mapsync.sync.saved_plan import PlanWriter


@cli.command("plan")
@click.option("--dataflow", "dataflows", multiple=True, help="Only this dataflow (repeatable).")
@click.option("--full", is_flag=True, help="Rescan everything (and so notice deletions).")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when apply would fail a record, trip the guard or make one wait; else 3 when changes are "
                   "pending, 0 when there is nothing to do.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@id_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the plan to this file, for `mapsync apply --plan FILE` to perform exactly.")
@max_delete_share_option
@click.pass_context
def plan(ctx: click.Context, dataflows: tuple[str, ...], full: bool, exit_code: bool, as_json: bool,
         max_delete_share: float | None, record_ids: tuple[str, ...], out: Path | None) -> None:
    """Read both systems and print what apply would do, record by record."""
    workspace = workspace_from(ctx)
    actions: dict[str, list[dict[str, object]]] = {}
    heading = _Heading()
    writer = PlanWriter(out) if out is not None else None

    def on_action(spec: DataflowSpec, action: Action) -> None:
        if writer is not None:
            writer.add(spec, action)
        if as_json:
            actions.setdefault(spec.name, []).append(action.to_json())
            return
        heading.show(spec)
        for line in action_lines(action, spec.source.entity, spec.target.entity):
            click.echo(f"  {line}")

    only_ids = ids_by_dataflow(workspace, record_ids, dataflows=dataflows, full=full)
    names = list(only_ids) if only_ids is not None else check_dataflows(workspace, dataflows)
    with SyncRun(workspace, dataflows=names, full=full, max_delete_share=max_delete_share, only_ids=only_ids) as run:
        planned = []
        for item in run.plan(on_action):
            planned.append(item)
            if not as_json:
                heading.show(item.spec)
                _print_end_of_dataflow(item)
        if writer is not None:
            _save(writer, workspace, run, planned, max_delete_share)
    total = Counts()
    for item in planned:
        total.add(item.counts)
    if as_json:
        click.echo(json.dumps(_plan_json(planned, actions, total), indent=2, ensure_ascii=False))
    elif any(item.error for item in planned):
        # Counts of a plan that could not read a system would read as "nothing to do": say it failed.
        click.echo(f"plan failed: {'; '.join(dict.fromkeys(item.error for item in planned if item.error))}")
    else:
        click.echo(_summary_line("plan", total))
    if any(item.error for item in planned):
        ctx.exit(EXIT_FAILED)
    if exit_code and (total.failed or total.deferred):  # what apply would report as a failed run
        ctx.exit(EXIT_FAILED)
    if exit_code and total.writes_pending:
        ctx.exit(EXIT_PENDING)


def _save(writer: PlanWriter, workspace: Workspace, run: SyncRun, planned: list[PlannedDataflow],
          max_delete_share: float | None) -> None:
    if any(item.error for item in planned):
        click.echo(f"plan not saved to {writer.path}: a dataflow could not be planned", err=True)
        return
    writer.save(workspace, run.store, planned, max_delete_share)
    click.echo(f"plan saved to {writer.path}; perform it with `mapsync apply --plan {writer.path}`", err=True)


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
        click.echo(f"  plan failed: {item.error}")
    else:
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
