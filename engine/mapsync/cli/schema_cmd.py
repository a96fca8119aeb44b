"""`mapsync schema`: the JSON Schemas shipped in the package, for editors and CI checks."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from mapsync.cli._app import EXIT_INVALID
from mapsync.errors import MapsyncError

# The name on the command line, and the file in mapsync.schemas that holds it.
SCHEMA_FILES = {
    "mapping": "mapping.schema.json",
    "config": "config.schema.json",
    "connector": "connector.schema.json",  # connector definitions (issue 13): shipped once they exist
}


class SchemaOutError(MapsyncError):
    """The schema could not be written where --out said."""


def schema_text(name: str) -> str | None:
    """The schema's JSON text as shipped, or None when this mapsync has no such schema yet."""
    item = resources.files("mapsync.schemas") / SCHEMA_FILES[name]
    return item.read_text(encoding="utf-8") if item.is_file() else None


@click.command("schema")
@click.argument("name", type=click.Choice(sorted(SCHEMA_FILES)))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema to FILE instead of printing it.")
@click.pass_context
def schema(ctx: click.Context, name: str, out: Path | None) -> None:
    """Print the JSON Schema of mapping files, of mapsync.yaml, or of connector definitions."""
    text = schema_text(name)
    if text is None:
        click.echo(f"error: this mapsync has no {name} schema yet: connectors are Python classes, and their "
                   "settings are checked by `mapsync validate` (see docs/connectors/)", err=True)
        ctx.exit(EXIT_INVALID)
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SchemaOutError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {out}", err=True)
