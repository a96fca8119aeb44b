"""`mapsync test`: every example of every mapping, forward and backward; or, with --record, live records."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from mapsync.cli._app import EXIT_FAILED, skip_final_collection
from mapsync.cli._workspace import workspace_from
from mapsync.mapping.examples import run_examples
from mapsync.spec.model import Workspace

if TYPE_CHECKING:
    from mapsync.sync.try_record import RecordTrial


@click.command("test")
@click.option("-v", "--verbose", is_flag=True, help="List passing examples too.")
@click.option("--record", "records", multiple=True, metavar="DATAFLOW:ID",
              help="Instead of the examples, read this live record (a source record; DATAFLOW:target:ID names a "
                   "target record) and show it mapped both ways, with its linked partner. Writes nothing. "
                   "Repeatable.")
@click.pass_context
def test(ctx: click.Context, verbose: bool, records: tuple[str, ...]) -> None:
    """Run the examples in the mapping files both ways; show a diff for each failure."""
    workspace = workspace_from(ctx)
    if records:
        _test_records(ctx, workspace, records)
        return
    skip_final_collection()
    passed = failed = 0
    for result in run_examples(workspace):
        label = f"{result.dataflow}: {result.example} ({result.direction})"
        if result.passed:
            passed += 1
            if verbose:
                click.echo(f"PASS {label}")
            continue
        failed += 1
        click.echo(f"FAIL {label}  [{result.file}:{result.line}]")
        click.echo(result.diff())
    click.echo(f"{passed} passed, {failed} failed")
    if failed:
        ctx.exit(EXIT_FAILED)


def _test_records(ctx: click.Context, workspace: Workspace, records: tuple[str, ...]) -> None:
    # Imported here: the examples alone need no sync engine and no HTTP (`mapsync test` in CI starts fast).
    from mapsync.sync.try_record import parse_record_ref, try_record

    refs = []
    for text in records:
        try:
            refs.append(parse_record_ref(text, list(workspace.dataflows)))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--record") from None
    failed = False
    for dataflow, side, record_id in refs:
        trial = try_record(workspace, dataflow, side, record_id)  # a record that cannot be read: exit 1
        _show(trial)
        failed = failed or trial.failed
    click.echo("nothing was written")
    if failed:
        ctx.exit(EXIT_FAILED)


def _show(trial: RecordTrial) -> None:
    this, other = trial.label(trial.side), trial.label(trial.other)
    click.echo(f"{trial.spec.name}: {this} {trial.record_id} ({trial.side})")
    _block(f"read from {this}", trial.record)
    _mapped_block(f"mapped to {other} (what a create there would send)", trial.projection.values,
                  trial.projection.error)
    if trial.partner_id is None:
        click.echo(f"  not linked to a {other} yet")
    elif trial.partner is None:
        click.echo(f"  linked to {other} {trial.partner_id}, which is gone")
    else:
        _block(f"linked {other} {trial.partner_id}, now", trial.partner)
        _mapped_block(f"mapped back to {this} (what {other} {trial.partner_id} would write)",
                      trial.reverse.values, trial.reverse.error)
        _differences(trial, other)
    click.echo("")


def _differences(trial: RecordTrial, other: str) -> None:
    if trial.differences is None:
        return  # a row failed on one of them: nothing to compare (the error is shown)
    if not trial.differences:
        click.echo("  in sync: the pair agrees on every mapped property")
        return
    click.echo(f"  differs from {other} {trial.partner_id} (a sync merges these with the last-synced values):")
    for prop, here, there in trial.differences:
        click.echo(f"    {prop}: {_json(here)} here, {_json(there)} there")


def _mapped_block(title: str, values: dict[str, Any] | None, error: str) -> None:
    if error:
        click.echo(f"  {title}:\n    error: {error}")
    else:
        _block(title, values or {})


def _block(title: str, record: dict[str, Any]) -> None:
    click.echo(f"  {title}:")
    for line in json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True, default=str).splitlines():
        click.echo(f"    {line}")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
