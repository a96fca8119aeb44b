"""The `mapsync` command line. Each command lives in its own module; this one names them for the group.

A command's module is imported when that command runs (or when help lists it), so `mapsync validate` does
not pay for the sync engine, httpx or the worker.
"""

from __future__ import annotations

from mapsync.cli._app import cli, main

# name -> (module, attribute) of each command
COMMANDS: dict[str, tuple[str, str]] = {
    "apply": ("mapsync.cli.apply_cmd", "apply"),
    "docs": ("mapsync.cli.docs_cmd", "docs"),
    "explain": ("mapsync.cli.explain_cmd", "explain"),
    "history": ("mapsync.cli.history_cmd", "history"),
    "init": ("mapsync.cli.init_cmd", "init"),
    "links": ("mapsync.cli.links_cmd", "links"),
    "plan": ("mapsync.cli.plan_cmd", "plan"),
    "run": ("mapsync.cli.run_cmd", "run"),
    "sandbox": ("mapsync.cli.sandbox_cmd", "sandbox_command"),
    "schema": ("mapsync.cli.schema_cmd", "schema"),
    "test": ("mapsync.cli.test_cmd", "test"),
    "validate": ("mapsync.cli.validate_cmd", "validate"),
}
cli.lazy_commands.update(COMMANDS)

__all__ = ["COMMANDS", "cli", "main"]
