"""Reference translation through another dataflow's links, backed by the state store."""

from __future__ import annotations

from mapsync.state.base import StateStore


class StoreLinks:
    """LinkLookup over the state store. Caches hits only: a miss may be linked later in the run."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._forward: dict[tuple[str, str], str] = {}
        self._backward: dict[tuple[str, str], str] = {}
        self.planned: dict[tuple[str, str], str] = {}  # plan-only: creates planned earlier in this plan

    def to_target(self, dataflow: str, source_id: str) -> str | None:
        key = (dataflow, source_id)
        if key in self._forward:
            return self._forward[key]
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
