"""The click group and the mapping from mapsync errors to exit codes."""

from __future__ import annotations

import atexit
import gc
import importlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mapsync import __version__
from mapsync.errors import MapsyncError, SpecError
from mapsync.redact import redact_text

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_PENDING = 0, 1, 2, 3


class MapsyncGroup(click.Group):
    """Turns every MapsyncError into one clear message and its exit code (no traceback unless --debug).

    Commands are named in `lazy_commands` (name -> module, attribute) and imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module, attribute = self.lazy_commands[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MapsyncError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            # Errors hide secrets where they arise; redact_text is the net under them (a URL quoted whole).
            click.echo(f"error: {redact_text(str(exc))}" if not isinstance(exc, SpecError) else str(exc), err=True)
            ctx.exit(EXIT_INVALID if isinstance(exc, SpecError) else EXIT_FAILED)
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=MapsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mapsync")
@click.option("--config", "config_path", envvar="MAPSYNC_CONFIG", type=click.Path(dir_okay=False),
              help="The workspace config (default: ./mapsync.yaml).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="MAPSYNC_LOG_FORMAT", help="Logs on stderr: text lines, or one JSON object per line.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), envvar="MAPSYNC_LOG_LEVEL",
              help="Least level logged (default: warning for text, info for json or with -v); info logs every "
                   "write, debug adds the values written.")
@click.option("-v", "--verbose", is_flag=True, help="Also log every HTTP request (method, path, status, ms).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool, log_format: str, log_level: str | None,
        verbose: bool) -> None:
    """mapsync: declarative two-way sync between business systems."""
    from mapsync.observe import logs

    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["debug"] = debug
    logs.configure(log_format, log_level, verbose=verbose)
    ctx.call_on_close(logs.unconfigure)


def skip_final_collection() -> None:
    """At exit, leave the objects of the imports to the OS: the interpreter's last garbage collections walk
    them all, a tenth of a short command's time. Only for commands whose finalizers have nothing left to do
    (files and connections closed), as those in reference cycles are then not finalized."""
    atexit.unregister(gc.freeze)  # once, however often a command runs in one process (as in the tests)
    atexit.register(gc.freeze)


def _register_commands() -> None:
    """Make sure every command is named: mapsync.cli lists them, and runs before any of its modules."""
    import mapsync.cli  # noqa: F401 -- importing the package is what names the commands


def main() -> None:
    _register_commands()
    try:
        cli(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so in one line unless --debug asked for the traceback
        if "--debug" in sys.argv:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {redact_text(str(exc))} (rerun with --debug for details)",
                   err=True)
        sys.exit(EXIT_FAILED)
