"""The sorted (modified, id) index behind every listing of the emulators."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator


class KeysetIndex:
    """Ids kept sorted by (modified micros, id), so listing pages are bisect + slice, not a sort.

    Writes usually land at the end (the newest timestamp), which keeps `insort` cheap even for
    100,000 records.
    """

    def __init__(self) -> None:
        self._keys: list[tuple[int, str]] = []
        self._stamp: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def load(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Bulk insert (seeding): one sort instead of one insort per record."""
        for record_id, micros in pairs:
            self._remove_key(record_id)
            self._stamp[record_id] = micros
        self._keys = sorted((micros, record_id) for record_id, micros in self._stamp.items())

    def put(self, record_id: str, micros: int) -> None:
        self._remove_key(record_id)
        self._stamp[record_id] = micros
        insort(self._keys, (micros, record_id))

    def discard(self, record_id: str) -> None:
        self._remove_key(record_id)

    def stamp(self, record_id: str) -> int | None:
        return self._stamp.get(record_id)

    def _remove_key(self, record_id: str) -> None:
        micros = self._stamp.pop(record_id, None)
        if micros is None:
            return
        position = bisect_left(self._keys, (micros, record_id))
        del self._keys[position]

    def first_at_or_after(self, micros: int) -> int:
        """Position of the first key with a stamp >= micros."""
        # (micros,) sorts before every (micros, id): a shorter tuple that is a prefix is smaller.
        return bisect_left(self._keys, (micros,))

    def first_after_key(self, key: tuple[int, str]) -> int:
        return bisect_right(self._keys, key)

    def keys_from(self, position: int) -> Iterator[tuple[int, str]]:
        for index in range(position, len(self._keys)):
            yield self._keys[index]

    def slice(self, start: int, stop: int) -> list[tuple[int, str]]:
        return self._keys[start:stop]

    def ordered_ids(self) -> list[str]:
        return [record_id for _, record_id in self._keys]


__all__ = ["KeysetIndex"]
