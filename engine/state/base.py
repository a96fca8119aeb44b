"""The state store interface: links, cursors, pending creates, dead letters, conflicts, the run lock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

Values = dict[str, Any]


@dataclass
class Link:
    """A source record linked to a target record, with what both sides held when last in sync.

    `source_values` and `target_values` are the canonical projections (target-side representation,
    keyed by the mapping's target paths) of each side at the last sync; `*_version` is the side's own
    change marker at that time (Tidsbanken SistEndretDato, Custompms version).
    """

    dataflow: str
    source_id: str
    target_id: str
    source_values: Values = field(default_factory=dict)
    target_values: Values = field(default_factory=dict)
    source_version: str | None = None
    target_version: str | None = None
    state: str = "ok"  # "ok" or "conflict" (a manual conflict awaits resolution)
    updated_at: str = ""


@dataclass
class PendingCreate:
    """A create recorded before its request, so a crash or timeout can never make a duplicate."""

    dataflow: str
    side: str  # the side being written: "source" or "target"
    record_id: str  # the id of the record on the other side that this create mirrors
    idempotency_key: str
    created_at: str = ""


@dataclass
class DeadLetter:
    dataflow: str
    side: str  # the side whose write failed
    record_id: str  # the id of the record (on the side it was read from) that could not be synced
    reason: str
    status: int | None = None
    attempts: int = 1
    first_failed_at: str = ""
    last_failed_at: str = ""


@dataclass
class Conflict:
    """A property changed on both sides to different values, left for a person (policy `manual`)."""

    dataflow: str
    source_id: str
    target_id: str
    prop: str
    base: Any
    source_value: Any
    target_value: Any
    detected_at: str = ""


class StateStore(Protocol):
    """One interface over SQLite and PostgreSQL. Calls come from one thread at a time."""

    url: str

    # links
    def get_links(self, dataflow: str, *, source_ids: Iterable[str] = (), target_ids: Iterable[str] = ()
                  ) -> list[Link]: ...
    def link_by_source(self, dataflow: str, source_id: str) -> Link | None: ...
    def link_by_target(self, dataflow: str, target_id: str) -> Link | None: ...
    def iter_links(self, dataflow: str | None = None, state: str | None = None) -> Iterator[Link]: ...
    def count_links(self, dataflow: str) -> int: ...
    def put_link(self, link: Link) -> None: ...
    def put_links(self, links: Sequence[Link]) -> None: ...
    def delete_link(self, dataflow: str, source_id: str) -> None: ...

    # cursors: one per dataflow and side
    def get_cursor(self, dataflow: str, side: str) -> str | None: ...
    def set_cursor(self, dataflow: str, side: str, value: str | None) -> None: ...

    # pending creates
    def add_pending(self, pending: PendingCreate) -> None: ...
    def add_pendings(self, pendings: Sequence[PendingCreate]) -> None: ...
    def get_pending(self, dataflow: str, side: str, record_id: str) -> PendingCreate | None: ...
    def remove_pending(self, dataflow: str, side: str, record_id: str) -> None: ...
    def remove_pendings(self, dataflow: str, side: str, record_ids: Sequence[str]) -> None: ...
    def iter_pending(self, dataflow: str | None = None) -> Iterator[PendingCreate]: ...

    # dead letters
    def add_dead_letter(self, letter: DeadLetter) -> None: ...
    def remove_dead_letter(self, dataflow: str, side: str, record_id: str) -> None: ...
    def iter_dead_letters(self, dataflow: str | None = None) -> Iterator[DeadLetter]: ...

    # manual conflicts
    def add_conflict(self, conflict: Conflict) -> None: ...
    def iter_conflicts(self, dataflow: str | None = None) -> Iterator[Conflict]: ...
    def remove_conflicts(self, dataflow: str, source_id: str) -> None: ...

    # grouping: every write inside one transaction() is committed once, at its end
    def transaction(self) -> AbstractContextManager[None]: ...

    # the run lock
    def lock(self, name: str, *, wait: float = 0.0) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...
