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


# Shared by plan and apply, so that a plan made with the override shows exactly what the apply will do.
max_delete_share_option = click.option(
    "--max-delete-share", type=click.FloatRange(0, 1), metavar="SHARE",
    help="For this run, the share of each dataflow's links that may be deleted or unlinked (0..1), over "
         "deletes.max_share; a run that completes with it confirms the links left as the guard's new baseline.")
