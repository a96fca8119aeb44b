"""The row engine: records of either side projected to canonical values, and written back."""

from __future__ import annotations

from mapsync.mapping.mapper import DictLinks, LinkLookup, Mapper, UnresolvedReference

__all__ = ["DictLinks", "LinkLookup", "Mapper", "UnresolvedReference"]
