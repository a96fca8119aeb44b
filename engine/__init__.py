"""mapsync: a declarative two-way data-sync engine."""

from __future__ import annotations

from mapsync.errors import MapsyncError

__version__ = "0.1.0"
__all__ = ["MapsyncError", "__version__"]
