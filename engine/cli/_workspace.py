"""Loading the workspace for a command, from --config / MAPSYNC_CONFIG / ./mapsync.yaml."""

from __future__ import annotations

import click

from mapsync.spec.loader import load_workspace
from mapsync.spec.model import Workspace


def workspace_from(ctx: click.Context) -> Workspace:
    return load_workspace(ctx.obj.get("config_path") if ctx.obj else None)


def check_dataflows(workspace: Workspace, names: tuple[str, ...]) -> list[str]:
    """The --dataflow names, each known; an unknown one is a usage error (exit 2) listing the known ones."""
    unknown = [name for name in names if name not in workspace.dataflows]
    if unknown:
        raise click.BadParameter(f"unknown dataflow {', '.join(unknown)} (known: {', '.join(workspace.dataflows)})",
                                 param_hint="--dataflow")
    return list(names)
