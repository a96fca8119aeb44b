"""The workspace: mapsync.yaml and the mapping files, loaded, checked and turned into typed specs."""

from __future__ import annotations

from mapsync.spec.loader import find_config, load_workspace
from mapsync.spec.model import DataflowSpec, Example, Row, Side, Workspace

__all__ = ["DataflowSpec", "Example", "Row", "Side", "Workspace", "find_config", "load_workspace"]
