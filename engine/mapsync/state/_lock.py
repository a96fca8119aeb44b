"""The fenced run lock, shared by both SQL backends: a generation in `lock_fences` checked before each write."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mapsync.errors import LockLostError, StateError

if TYPE_CHECKING:
    from mapsync.state._sql import SqlStore


class UniqueViolation(StateError):
    """Raised by a backend when a statement breaks a uniqueness constraint (the store rewords it)."""


# Why a held lock is no longer held, asked of the backend: a sentence, or None while it still holds.
LockProbe = Callable[[], str | None]


class FencedLock:
    """The run lock as a run holds it: `check()` before every write.

    The lock is lost when the backend no longer holds it for this run (`probe`), or when its generation
    in `lock_fences` is no longer the one this run took (another run took the lock since). Inside a
    transaction, the generation is read with the row share lock of the dialect, so a run taking the lock
    over waits for that transaction to commit: the writes either land before the new run starts, or the
    check sees the new generation and nothing is written. Once lost, always lost.
    """

    def __init__(self, store: SqlStore, name: str, generation: int, probe: LockProbe) -> None:
        self.name = name
        self.generation = generation
        self._store = store
        self._probe = probe
        self._lost: str | None = None

    def check(self) -> None:
        if self._lost is None:
            self._lost = self._probe() or self._generation_moved()
        if self._lost is not None:
            raise LockLostError(f"lost the run lock {self.name!r} on {self._store.url}: {self._lost}: "
                                "stopped before writing more")

    def _generation_moved(self) -> str | None:
        rows = self._store._query(f"SELECT generation FROM lock_fences WHERE name = ?"
                                  f"{self._store.dialect.share_row}", (self.name,))
        current = int(rows[0][0]) if rows else None
        if current == self.generation:
            return None
        return f"another run has taken it since (lock generation {current}, this run took {self.generation})"

    def __repr__(self) -> str:
        return f"<FencedLock {self.name!r} generation {self.generation}>"
