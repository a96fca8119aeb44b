"""Loading the workspace for a command, from --config / MAPSYNC_CONFIG / ./mapsync.yaml."""

from __future__ import annotations

import click

from mapsync.spec.loader import load_workspace
from mapsync.spec.model import Workspace


def workspace_from(ctx: click.Context) -> Workspace:
    return load_workspace(ctx.obj.get("config_path") if ctx.obj else None)
