"""Imports every command module so each registers itself on the group."""

from __future__ import annotations

from mapsync.cli import (  # noqa: F401
    apply_cmd,
    docs_cmd,
    links_cmd,
    plan_cmd,
    sandbox_cmd,
    test_cmd,
    validate_cmd,
)
