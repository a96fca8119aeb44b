"""The sync: plan record-level actions from both sides and the links, perform them, report."""

from __future__ import annotations

from mapsync.sync.actions import Action, ActionKind, ConflictInfo
from mapsync.sync.report import Counts, Report
from mapsync.sync.runner import PlannedDataflow, SyncRun

__all__ = ["Action", "ActionKind", "ConflictInfo", "Counts", "PlannedDataflow", "Report", "SyncRun"]
