"""`mapsync docs`: the dataflow document, property tables taken from the mappings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from mapsync.cli._app import cli
from mapsync.cli._workspace import workspace_from
from mapsync.docs import write_docs


@cli.command("docs")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder to write to (default: docs/dataflows beside mapsync.yaml).")
@click.pass_context
def docs(ctx: click.Context, out_dir: str | None) -> None:
    """Write docs/dataflows/<source>-<target>.rst from the mappings."""
    workspace = workspace_from(ctx)
    folder = Path(out_dir) if out_dir else workspace.root / "docs" / "dataflows"
    for path in write_docs(workspace, folder, datetime.now()):
        click.echo(f"wrote {path}")
