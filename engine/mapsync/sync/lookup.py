"""Reference translation through another dataflow's links, backed by the state store."""

from __future__ import annotations

from collections.abc import Iterable

from mapsync.state.base import StateStore


class StoreLinks:
    """LinkLookup over the state store, with a cache the executor keeps current as it links records."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._forward: dict[tuple[str, str], str] = {}
        self._backward: dict[tuple[str, str], str] = {}
        self._absent: set[tuple[str, str]] = set()  # looked up in a batch and not linked

    def prefetch(self, dataflow: str, source_ids: Iterable[str]) -> None:
        """Look a page's worth of references up in one query instead of one query each."""
        wanted = {i for i in source_ids if (dataflow, i) not in self._forward and (dataflow, i) not in self._absent}
        if not wanted:
            return
        for link in self.store.get_links(dataflow, source_ids=sorted(wanted)):
            self.learn(dataflow, link.source_id, link.target_id)
            wanted.discard(link.source_id)
        self._absent.update((dataflow, i) for i in wanted)

    def learn(self, dataflow: str, source_id: str, target_id: str) -> None:
        """A link made (or found) in this run."""
        self._forward[(dataflow, source_id)] = target_id
        self._backward[(dataflow, target_id)] = source_id
        self._absent.discard((dataflow, source_id))

    def to_target(self, dataflow: str, source_id: str) -> str | None:
        key = (dataflow, source_id)
        if key in self._forward:
            return self._forward[key]
        if key in self._absent:
            return None
        link = self.store.link_by_source(dataflow, source_id)
        if link is None:
            return None
        self._forward[key] = link.target_id
        return link.target_id

    def to_source(self, dataflow: str, target_id: str) -> str | None:
        key = (dataflow, target_id)
        if key in self._backward:
            return self._backward[key]
        link = self.store.link_by_target(dataflow, target_id)
        if link is None:
            return None
        self._backward[key] = link.source_id
        return link.source_id

    def forget(self, dataflow: str, source_id: str, target_id: str) -> None:
        self._forward.pop((dataflow, source_id), None)
        self._backward.pop((dataflow, target_id), None)


class PlannedLinks(StoreLinks):
    """`plan`'s view of the links: the store's, as the plan's earlier actions would leave them.

    apply learns each link it makes and forgets each one it removes as it goes, so a later dataflow's
    references resolve (or wait) against them; plan writes nothing, so this overlay, kept apart from the
    store's cache, holds what the plan would make (creates, matches, relinks) and remove (unlinks, deletes).
    """

    def __init__(self, store: StateStore) -> None:
        super().__init__(store)
        self._made: dict[tuple[str, str], str] = {}
        self._made_back: dict[tuple[str, str], str] = {}
        self._removed: set[tuple[str, str]] = set()  # (dataflow, source id)
        self._removed_back: set[tuple[str, str]] = set()  # (dataflow, target id)

    def would_make(self, dataflow: str, source_id: str, target_id: str) -> None:
        self._made[(dataflow, source_id)] = target_id
        self._made_back[(dataflow, target_id)] = source_id
        self._removed.discard((dataflow, source_id))
        self._removed_back.discard((dataflow, target_id))

    def would_remove(self, dataflow: str, source_id: str, target_id: str) -> None:
        self._made.pop((dataflow, source_id), None)
        self._made_back.pop((dataflow, target_id), None)
        self._removed.add((dataflow, source_id))
        self._removed_back.add((dataflow, target_id))

    def to_target(self, dataflow: str, source_id: str) -> str | None:
        key = (dataflow, source_id)
        if key in self._made:
            return self._made[key]
        return None if key in self._removed else super().to_target(dataflow, source_id)

    def to_source(self, dataflow: str, target_id: str) -> str | None:
        key = (dataflow, target_id)
        if key in self._made_back:
            return self._made_back[key]
        return None if key in self._removed_back else super().to_source(dataflow, target_id)
