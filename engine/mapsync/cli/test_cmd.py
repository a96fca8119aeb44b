"""`mapsync test`: every example of every mapping, forward and backward."""

from __future__ import annotations

import click

from mapsync.cli._app import EXIT_FAILED
from mapsync.cli._workspace import workspace_from
from mapsync.mapping.examples import run_examples


@click.command("test")
@click.option("-v", "--verbose", is_flag=True, help="List passing examples too.")
@click.pass_context
def test(ctx: click.Context, verbose: bool) -> None:
    """Run the examples in the mapping files both ways; show a diff for each failure."""
    workspace = workspace_from(ctx)
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
