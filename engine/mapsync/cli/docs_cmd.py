"""`mapsync docs`: the dataflow document, property tables taken from the mappings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from mapsync.cli._app import EXIT_INVALID
from mapsync.cli._workspace import workspace_from
from mapsync.docs import write_docs


class UnwritableFolder(click.ClickException):
    """The documents cannot be written where they should go (exit 2, like a bad --out)."""

    exit_code = EXIT_INVALID


@click.command("docs")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder to write to (default: docs/dataflows beside mapsync.yaml).")
@click.pass_context
def docs(ctx: click.Context, out_dir: str | None) -> None:
    """Write docs/dataflows/<source>-<target>.rst from the mappings."""
    workspace = workspace_from(ctx)
    folder = Path(out_dir) if out_dir else workspace.root / "docs" / "dataflows"
    try:
        written = write_docs(workspace, folder, datetime.now())
    except OSError as exc:
        # e.g. a file where a folder should be on the way, a read-only place, a full disk
        reason = f"cannot write the documents to {folder}: {exc.strerror or exc}"
        if out_dir:
            raise click.BadParameter(reason, param_hint="--out") from None
        raise UnwritableFolder(reason) from None
    for path in written:
        click.echo(f"wrote {path}")
