"""What a dataflow's plan reads, page by page: the chunks, each record's change marker, and what the scan of
both sides found besides the actions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from mapsync.errors import MappingError
from mapsync.mapping.types import to_datetime
from mapsync.sync.actions import Action

CHUNK = 500


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def modified_of(schema: dict[str, Any], record: dict[str, Any] | None) -> str | None:
    """The record's change marker (its modified timestamp, normalised to UTC)."""
    field_name = schema.get("x-modified")
    if not field_name or not record:
        return None
    try:
        return to_datetime(record.get(field_name))
    except MappingError:
        return None


@dataclass
class TargetSeen:
    record: dict[str, Any]
    modified: str


@dataclass
class Scan:
    """What one dataflow's scan of both sides found, besides the actions."""

    source_cursor: str | None = None
    target_cursor: str | None = None
    complete: bool = False
    guard_tripped: bool = False  # cursors then stay put, so the deletions are seen again once allowed
    target_changed: dict[str, TargetSeen] = field(default_factory=dict)
    unlinked_targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    deletes: list[Action] = field(default_factory=list)
    full_source: bool = False  # the source was listed from the start, so disappearances were seen
    retired_dead: list[str] = field(default_factory=list)  # source ids of retired links with a partner gone
