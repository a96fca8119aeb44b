"""mapsync: a declarative two-way data-sync engine.

    workspace = mapsync.load_workspace("mapsync.yaml")
    with mapsync.SyncRun(workspace) as run:
        report = run.apply()
"""

from __future__ import annotations

import typing

from mapsync import _lazy
from mapsync.errors import MapsyncError

if typing.TYPE_CHECKING:
    from mapsync.spec import load_workspace
    from mapsync.sync import SyncRun

__version__ = "0.1.0"
__all__ = ["MapsyncError", "SyncRun", "__version__", "load_workspace"]

# Imported on first use (PEP 562): `mapsync validate` must not pay for the sync engine and httpx.
__getattr__ = _lazy.lazy_exports(__name__, {"SyncRun": "mapsync.sync", "load_workspace": "mapsync.spec"}, globals())
