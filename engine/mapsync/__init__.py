"""mapsync: a declarative two-way data-sync engine.

    workspace = mapsync.load_workspace("mapsync.yaml")
    with mapsync.SyncRun(workspace) as run:
        report = run.apply()
"""

from __future__ import annotations

from mapsync.errors import MapsyncError
from mapsync.spec import load_workspace
from mapsync.sync import SyncRun

__version__ = "0.1.0"
__all__ = ["MapsyncError", "SyncRun", "__version__", "load_workspace"]
