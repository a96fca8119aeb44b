"""The `mapsync` command line. Each command lives in its own module; this one assembles the group."""

from __future__ import annotations

from mapsync.cli._app import main

__all__ = ["main"]
