"""The `mapsync` command line. Each command lives in its own module; this one attaches them to the group."""

from __future__ import annotations

from mapsync.cli import apply_cmd, docs_cmd, links_cmd, plan_cmd, sandbox_cmd, test_cmd, validate_cmd
from mapsync.cli._app import cli, main

for _command in (
    apply_cmd.apply,
    docs_cmd.docs,
    links_cmd.links,
    plan_cmd.plan,
    sandbox_cmd.sandbox_command,
    test_cmd.test,
    validate_cmd.validate,
):
    cli.add_command(_command)

__all__ = ["cli", "main"]
