"""Reference translation through another dataflow's links, backed by the state store."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from mapsync.state.base import StateStore

# Links kept at hand per direction (the rest are read back from the store): enough for the references of
# many pages, so a run's memory stays flat however many records it links. Also far more than the
# outcomes the executor records in one group (workers x 10 or so), so a link it learns is in the store
# (written with that group) before the cache can let go of it.
CACHE_SIZE = 10_000
Key = tuple[str, str]  # (dataflow, id)


class LinkCache:
    """The most recently used `size` answers of one direction; None: looked up and not linked."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Key, str | None] = OrderedDict()

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> str | None:
        """The cached answer (call only for a key the cache holds)."""
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: Key, value: str | None) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: Key) -> None:
        self._entries.pop(key, None)


class StoreLinks:
    """LinkLookup over the state store, with a bounded cache the executor keeps current as it links records."""

    def __init__(self, store: StateStore, cache_size: int | None = None) -> None:
        self.store = store
        size = cache_size or CACHE_SIZE
        self._forward = LinkCache(size)  # (dataflow, source id) -> target id, None: not linked
        self._backward = LinkCache(size)  # (dataflow, target id) -> source id

    @property
    def cached(self) -> int:
        """Answers held in memory, both directions."""
        return len(self._forward) + len(self._backward)

    def prefetch(self, dataflow: str, source_ids: Iterable[str]) -> None:
        """Look a page's worth of references up in one query instead of one query each."""
        wanted = {i for i in source_ids if (dataflow, i) not in self._forward}
        if not wanted:
            return
        for link in self.store.get_links(dataflow, source_ids=sorted(wanted)):
            self.learn(dataflow, link.source_id, link.target_id)
            wanted.discard(link.source_id)
        for source_id in wanted:
            self._forward.put((dataflow, source_id), None)

    def learn(self, dataflow: str, source_id: str, target_id: str) -> None:
        """A link made (or found) in this run."""
        self._forward.put((dataflow, source_id), target_id)
        self._backward.put((dataflow, target_id), source_id)

    def to_target(self, dataflow: str, source_id: str) -> str | None:
        key = (dataflow, source_id)
        if key in self._forward:
            return self._forward.get(key)
        link = self.store.link_by_source(dataflow, source_id)
        if link is None:
            return None
        self._forward.put(key, link.target_id)
        return link.target_id

    def to_source(self, dataflow: str, target_id: str) -> str | None:
        key = (dataflow, target_id)
        if key in self._backward:
            return self._backward.get(key)
        link = self.store.link_by_target(dataflow, target_id)
        if link is None:
            return None
        self._backward.put(key, link.source_id)
        return link.source_id

    def forget(self, dataflow: str, source_id: str, target_id: str) -> None:
        self._forward.pop((dataflow, source_id))
        self._backward.pop((dataflow, target_id))


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
