"""`mapsync init [DIR]`: a working workspace (the reference one) in an empty or new folder.

What it writes comes from the package (mapsync.workspace_template and mapsync.schemas), so a user who
installed mapsync with pip needs no checkout. The schemas are written too, under DIR/schemas/, so the
`# yaml-language-server: $schema=` line of every mapping names a file that exists.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import click

from mapsync.errors import MapsyncError

SCHEMA_NAMES = ("mapping.schema.json", "config.schema.json")
CONFIG_SCHEMA_LINE = "# yaml-language-server: $schema=schemas/config.schema.json\n"
GITIGNORE = "# mapsync's local state (links, cursors, failed records) when the state is SQLite\n.mapsync/\n"


class InitError(MapsyncError):
    """The workspace could not be written."""


def workspace_files() -> dict[str, str]:
    """Every file `init` writes, by its path relative to DIR."""
    template = resources.files("mapsync.workspace_template")
    schemas = resources.files("mapsync.schemas")
    files = {"mapsync.yaml": _with_schema_line(template.joinpath("mapsync.yaml").read_text(encoding="utf-8")),
             ".gitignore": GITIGNORE}
    for item in sorted(_yaml_files(template.joinpath("mappings")), key=lambda i: i.name):
        files[f"mappings/{item.name}"] = item.read_text(encoding="utf-8")
    for name in SCHEMA_NAMES:
        files[f"schemas/{name}"] = schemas.joinpath(name).read_text(encoding="utf-8")
    return files


def _yaml_files(folder: Traversable) -> list[Traversable]:
    return [item for item in folder.iterdir() if item.is_file() and item.name.endswith((".yaml", ".yml"))]


def _with_schema_line(text: str) -> str:
    """mapsync.yaml as shipped, with the line that lets an editor check it against the written schema."""
    return text if text.startswith("# yaml-language-server:") else CONFIG_SCHEMA_LINE + text


def check_target(folder: Path, *, force: bool) -> None:
    """Refuse a folder that holds anything unless --force; refuse a path that is not a folder at all."""
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder} exists and is not a folder")
    if not force and folder.is_dir() and any(folder.iterdir()):
        raise InitError(f"{folder} is not empty: choose an empty or new folder, or pass --force to write "
                        "the workspace's files over those of the same name (others are left alone)")


def write_workspace(folder: Path, files: dict[str, str]) -> list[str]:
    """Write the files; one line per file saying whether it was new or replaced (only ever with --force)."""
    said: list[str] = []
    try:
        for relative, text in files.items():
            path = folder / relative
            verb = "replaced" if path.exists() else "wrote"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            said.append(f"{verb} {path}")
    except OSError as exc:
        raise InitError(f"cannot write the workspace in {folder}: {exc.strerror or exc}") from None
    return said


@click.command("init")
@click.argument("folder", required=False, default=".", type=click.Path(file_okay=True, path_type=Path))
@click.option("--force", is_flag=True, help="Write into a folder that is not empty, over files of the same name.")
def init(folder: Path, force: bool) -> None:
    """Write a working workspace into FOLDER (default: the current one): mapsync.yaml, the reference
    mappings (pointing at the sandbox, see `mapsync sandbox`) and the JSON Schemas editors read."""
    check_target(folder, force=force)
    for line in write_workspace(folder, workspace_files()):
        click.echo(line)
    click.echo(f"next: cd {folder}, then `mapsync validate`; try it on the emulators with `mapsync sandbox`")
