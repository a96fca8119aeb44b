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
        self.planned: dict[tuple[str, str], str] = {}  # plan-only: creates planned earlier in this plan

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
            return self.planned.get(key)
        link = self.store.link_by_source(dataflow, source_id)
        if link is None:
            return self.planned.get(key)
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
