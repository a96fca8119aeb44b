"""The `mapsync` command line. Each command lives in its own module; this one attaches them to the group."""

from __future__ import annotations

from mapsync.cli import (
    apply_cmd,
    docs_cmd,
    explain_cmd,
    history_cmd,
    init_cmd,
    links_cmd,
    plan_cmd,
    run_cmd,
    sandbox_cmd,
    schema_cmd,
    test_cmd,
    validate_cmd,
)
from mapsync.cli._app import cli, main

for _command in (
    apply_cmd.apply,
    docs_cmd.docs,
    explain_cmd.explain,
    history_cmd.history,
    init_cmd.init,
    links_cmd.links,
    plan_cmd.plan,
    run_cmd.run,
    sandbox_cmd.sandbox_command,
    schema_cmd.schema,
    test_cmd.test,
    validate_cmd.validate,
):
    cli.add_command(_command)

__all__ = ["cli", "main"]
