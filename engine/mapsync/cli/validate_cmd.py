"""`mapsync validate`: the whole workspace checked offline; every problem as file:line: message."""

from __future__ import annotations

import click

from mapsync.cli._app import EXIT_FAILED, EXIT_INVALID, skip_final_collection
from mapsync.cli._workspace import workspace_from
from mapsync.errors import MapsyncError, SpecErrors
from mapsync.spec.model import Workspace


@click.command("validate")
@click.option("--online", is_flag=True, help="Also check that every connection answers and accepts its credentials.")
@click.pass_context
def validate(ctx: click.Context, online: bool) -> None:
    """Check mapsync.yaml and every mapping: schema, JMESPath, properties, types, references."""
    if not online:
        skip_final_collection()
    try:
        workspace = workspace_from(ctx)
    except SpecErrors as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        click.echo(f"{len(exc.errors)} problem{'s' if len(exc.errors) != 1 else ''} found", err=True)
        ctx.exit(EXIT_INVALID)
    rows = sum(len(s.rows) for s in workspace.dataflows.values())
    click.echo(f"ok: {len(workspace.dataflows)} dataflows, {rows} property rows, "
               f"{len(workspace.connections)} connections")
    if online and not _check_online(workspace):
        ctx.exit(EXIT_FAILED)


def _check_online(workspace: Workspace) -> bool:
    from mapsync.connectors import create_connector

    healthy = True
    for name, settings in workspace.connections.items():
        try:
            connector = create_connector(name, settings)
        except MapsyncError as exc:
            click.echo(f"{name}: cannot connect: {exc}", err=True)
            healthy = False
            continue
        try:
            connector.check()
            click.echo(f"{name}: reachable, credentials accepted")
        except MapsyncError as exc:
            click.echo(f"{name}: FAILED: {exc}", err=True)
            healthy = False
        finally:
            connector.close()
    return healthy
