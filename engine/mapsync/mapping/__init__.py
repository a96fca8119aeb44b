"""The row engine: records of either side projected to canonical values, and written back."""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from mapsync.mapping.mapper import DictLinks, LinkLookup, Mapper, UnresolvedReference

__all__ = ["DictLinks", "LinkLookup", "Mapper", "UnresolvedReference"]


def __getattr__(name: str) -> typing.Any:
    # The mapper is imported on first use (PEP 562): `mapsync validate` needs only paths, types and functions.
    if name in __all__:
        value = getattr(importlib.import_module("mapsync.mapping.mapper"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
