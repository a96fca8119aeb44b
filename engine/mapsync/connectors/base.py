"""The connector Protocol: what the engine needs from a system, in plain dicts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Record = dict[str, Any]


@dataclass(frozen=True)
class EntityInfo:
    """What the engine must know of one entity set of a system."""

    name: str  # as written in a mapping file, e.g. "Kunde", "Customer"
    key: str  # the property holding the record's id, e.g. "Id", "id"
    schema: Mapping[str, Any]  # the entity's JSON Schema (from schemas/<system>/<entity>.json)
    can_delete: bool = False
    # Properties the server sets; never sent in a write body, never compared.
    server_fields: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Change:
    """One record seen while listing changes. `modified` is a UTC ISO 8601 timestamp ending in Z."""

    id: str
    modified: str
    record: Record | None  # None for a tombstone
    deleted: bool = False


class ChangeListing(Iterator[Change]):
    """A listing that also says, once read to the end, where the next listing may start (`resume`).

    A connector may return one from `list_changes` (a plain iterator is as good): `resume` is then the
    `since` to pass next time so that nothing is missed, which may lie past the overlap window the
    connector would otherwise reach back from the last record listed (see docs/sync-semantics.md).
    """

    def __init__(self, produce: Callable[[ChangeListing], Iterator[Change]]) -> None:
        self.resume: str | None = None  # set by `produce` once it has yielded the last change
        self._changes = produce(self)

    def __next__(self) -> Change:
        return next(self._changes)


def resume_point(listing: Iterator[Change], last_seen: str | None) -> str | None:
    """Where the next listing starts: the connector's `resume` when it gave one, else the last change seen."""
    return getattr(listing, "resume", None) or last_seen


@runtime_checkable
class Connector(Protocol):
    """One connection to one system. Implementations must be safe to call from several threads."""

    name: str  # the connection's name in mapsync.yaml

    def entities(self) -> Mapping[str, EntityInfo]: ...

    def list_changes(self, entity: str, since: str | None) -> Iterator[Change]:
        """Every record changed at or after `since` (UTC ISO) in modified order, page by page.

        `since=None` lists everything (a full scan). Implementations may return records from a little
        before `since` (an overlap window); the engine tolerates repeats. Never holds the whole set.
        """

    def read(self, entity: str, record_id: str) -> Record | None: ...

    def create(self, entity: str, record: Record, *, idempotency_key: str) -> Record:
        """Create and return the stored record. Repeating a call with the same key must not duplicate."""

    def update(self, entity: str, record_id: str, changes: Record, *, current: Record) -> Record:
        """Write `changes` (top-level properties) onto the record. `current` is the record as last listed or
        read, or {} when the caller has not seen it: the connector then reads it only if its write needs it."""

    def delete(self, entity: str, record_id: str) -> None: ...

    def check(self) -> None:
        """One cheap request proving the system is reachable and the credentials are right."""

    def request_counts(self) -> dict[str, int]:
        """Requests sent so far, keyed by HTTP method."""

    def close(self) -> None: ...
