"""The state store interface: links, cursors, pending creates, dead letters, conflicts, the run lock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

Values = dict[str, Any]
Token = str | int | None  # a record's concurrency token (an ETag, a version number)


@dataclass
class Link:
    """A source record linked to a target record, with what both sides held when last in sync.

    `source_values` and `target_values` are the canonical projections (target-side representation,
    keyed by the mapping's target paths) of each side at the last sync; `*_version` is the side's own
    change marker at that time (Tidsbanken SistEndretDato, Custompms updated_at); `*_token` its concurrency
    token (Custompms version, as the connector definition's `concurrency.version` names it; None when the
    system has none), so that an update is sent with it instead of reading the record first.
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
    source_token: Token = None
    target_token: Token = None


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


@dataclass
class HistoryEntry:
    """One write mapsync made to a record (or an operator's change to a pair), and why.

    `side` is the side written ("source" or "target"), or "state" when only mapsync's own record of the
    pair changed (a link made or removed, a conflict left for a person, an operator's resolve).
    `changes` maps each property (the mapping's target path) to what happened to it: "old" and "new"
    values, and for a conflict settled automatically the policy, the winner and the losing value.
    """

    dataflow: str
    source_id: str
    target_id: str
    side: str
    kind: str  # create, update, delete, link, relink, unlink, conflict, resolve
    why: str
    changes: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    at: str = ""  # stamped by the store when empty
    id: int | None = None  # given by the store


class RunLock(Protocol):
    """What `StateStore.lock` yields: the proof that a run still holds its lock, checked before each write.

    `check()` raises LockLostError once the lock is no longer this run's: its connection dropped (and
    with it a PostgreSQL advisory lock), another run took it over, or its generation moved on (every
    taking of a lock bumps the generation, so a run that sees another one than it took has been
    overtaken). Inside a transaction the check is atomic with the writes around it.
    """

    name: str

    def check(self) -> None: ...


class StateStore(Protocol):
    """One interface over SQLite and PostgreSQL. Calls come from one thread at a time."""

    url: str

    # links
    def get_links(self, dataflow: str, *, source_ids: Iterable[str] = (), target_ids: Iterable[str] = ()
                  ) -> list[Link]: ...
    def target_markers(self, dataflow: str, target_ids: Iterable[str]) -> dict[str, str | None]: ...
    def link_by_source(self, dataflow: str, source_id: str) -> Link | None: ...
    def link_by_target(self, dataflow: str, target_id: str) -> Link | None: ...
    def iter_links(self, dataflow: str | None = None, state: str | None = None) -> Iterator[Link]: ...
    def iter_linked_source_ids(self, dataflow: str) -> Iterator[str]: ...
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

    # create_id counters: the next {counter} of a dataflow's creates on a side, in the caller's transaction
    def take_counter(self, dataflow: str, side: str) -> int: ...

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

    # the run lock: check() the lock it yields before every write (see RunLock)
    def lock(self, name: str, *, wait: float = 0.0) -> AbstractContextManager[RunLock]: ...

    def close(self) -> None: ...

    # retired links and the delete guard's baseline (see docs/sync-semantics.md, "Deletions and the guard")
    def retire_link(self, retired: RetiredLink) -> None: ...
    def retired_by_source(self, dataflow: str, source_ids: Iterable[str]) -> list[RetiredLink]: ...
    def retired_by_target(self, dataflow: str, target_ids: Iterable[str]) -> list[RetiredLink]: ...
    def iter_retired(self, dataflow: str | None = None) -> Iterator[RetiredLink]: ...
    def count_retired(self, dataflow: str, *, since: str = "") -> int: ...
    def drop_retired(self, dataflow: str, *, source_ids: Iterable[str] = (), target_ids: Iterable[str] = ()
                     ) -> None: ...
    def drop_retired_before(self, dataflow: str, stamp: str) -> int: ...
    def get_guard_baseline(self, dataflow: str) -> GuardBaseline | None: ...
    def set_guard_baseline(self, baseline: GuardBaseline) -> None: ...

    # the manual conflicts waiting on one pair (the executor keeps an unchanged one's detected_at)
    def conflicts_of(self, dataflow: str, source_id: str) -> list[Conflict]: ...

    # the history of every write (see state/_history.py)
    def add_history(self, entries: Sequence[HistoryEntry]) -> None: ...
    def history_of(self, dataflow: str, record_id: str, *, side: str = "source", limit: int | None = None
                   ) -> list[HistoryEntry]: ...
    def prune_history(self, dataflow: str, before: str, *, limit: int = 10_000) -> int: ...

    # what the last complete scan of a side listed at its cursor's tail (see ScanTail)
    def get_scan_tail(self, dataflow: str, side: str) -> ScanTail | None: ...
    def set_scan_tail(self, tail: ScanTail) -> None: ...

    # the schedule the workers share: each dataflow's last run (see ScheduleEntry, state/_schedule.py)
    def get_schedule(self, dataflow: str) -> ScheduleEntry | None: ...
    def put_schedule(self, entry: ScheduleEntry) -> None: ...
    def iter_schedule(self) -> list[ScheduleEntry]: ...


@dataclass(kw_only=True)
class RetiredLink(Link):
    """What a link knew when a deletion or an unlink removed it, so a record that comes back (a short
    listing, not a deletion) is linked to its old partner again instead of getting a duplicate."""

    gone: str = "source"  # the side whose record disappeared: "source" or "target"
    retired_at: str = ""  # stamped by the store when empty

    @classmethod
    def of(cls, link: Link, gone: str) -> RetiredLink:
        return cls(dataflow=link.dataflow, source_id=link.source_id, target_id=link.target_id,
                   source_values=dict(link.source_values), target_values=dict(link.target_values),
                   source_version=link.source_version, target_version=link.target_version,
                   source_token=link.source_token, target_token=link.target_token, gone=gone)

    def as_link(self) -> Link:
        return Link(self.dataflow, self.source_id, self.target_id, dict(self.source_values),
                    dict(self.target_values), self.source_version, self.target_version,
                    source_token=self.source_token, target_token=self.target_token)


@dataclass
class GuardBaseline:
    """How many links a dataflow had when the delete guard last confirmed them (a full scan that found no
    disappearance, or a run an operator allowed a larger share); removals since then add up."""

    dataflow: str
    links: int
    confirmed_at: str = ""  # stamped by the store when empty


@dataclass
class ScanTail:
    """The records the last complete scan of one side listed near its cursor, by change marker: the next
    run lists them again (its overlap window reaches back before the cursor) and passes over those it finds
    unchanged instead of planning them again. `fingerprint` names the mapping they were judged under: a tail
    taken under another mapping is not trusted."""

    dataflow: str
    side: str
    fingerprint: str
    seen: dict[str, list[str]] = field(default_factory=dict)  # change marker -> ids listed with it


@dataclass
class ScheduleEntry:
    """A dataflow's last run by a worker of `mapsync run`, shared by every worker on the store: whoever
    takes the dataflow next reads when it is due from here, so a run another worker just made is not
    repeated and a backoff survives a restart. Times are the store's UTC ISO 8601 stamps."""

    dataflow: str
    started_at: str = ""  # when the last run began (stamped by the store when empty)
    status: str = "running"  # running, ok, partial, failed, stopped, taken-elsewhere
    finished_at: str = ""  # empty while it runs (or when its worker died during it)
    failures: int = 0  # failed runs in a row: the backoff
    full_scan_at: str = ""  # when the last full scan that went through began (empty: none yet)
    worker: str = ""  # the host and process that ran it (for people)
