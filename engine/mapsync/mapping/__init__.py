"""The row engine: records of either side projected to canonical values, and written back."""

from __future__ import annotations

import typing

from mapsync import _lazy

if typing.TYPE_CHECKING:
    from mapsync.mapping.mapper import DictLinks, LinkLookup, Mapper, UnresolvedReference

__all__ = ["DictLinks", "LinkLookup", "Mapper", "UnresolvedReference"]


# The mapper is imported on first use (PEP 562): `mapsync validate` needs only paths, types and functions.
__getattr__ = _lazy.lazy_exports(__name__, dict.fromkeys(__all__, "mapsync.mapping.mapper"), globals())
