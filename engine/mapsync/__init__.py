"""mapsync: a declarative two-way data-sync engine.

    workspace = mapsync.load_workspace("mapsync.yaml")
    with mapsync.SyncRun(workspace) as run:
        report = run.apply()
"""

from __future__ import annotations

import importlib
import typing

from mapsync.errors import MapsyncError

if typing.TYPE_CHECKING:
    from mapsync.spec import load_workspace
    from mapsync.sync import SyncRun

__version__ = "0.1.0"
__all__ = ["MapsyncError", "SyncRun", "__version__", "load_workspace"]

# Imported on first use (PEP 562): `mapsync validate` must not pay for the sync engine and httpx.
_LAZY = {"SyncRun": "mapsync.sync", "load_workspace": "mapsync.spec"}


def __getattr__(name: str) -> typing.Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mapsync' has no attribute {name!r}")
