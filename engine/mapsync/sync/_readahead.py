"""A listing read ahead in a thread of its own: the wait for page n+1 overlaps the planning of page n, and a
dataflow's two listings (target and source) start together instead of one after the other.

At most `AHEAD` chunks wait unread per listing, so memory stays bounded whatever the listing's length. An
error of the listing reaches the reader at the point where the failed page would have come, as if the
listing were read in place; closing the reader stops the thread at its next chunk.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from mapsync.connectors.base import Change
from mapsync.sync.scan import CHUNK, chunked

AHEAD = 2  # chunks read ahead per listing
_POLL = 0.1  # seconds between checks whether the reader has gone, while the queue is full
JOIN_GRACE = 5.0  # seconds close() waits for a request under way


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


class ReadAhead:
    """Chunks of `listing`, read by a daemon thread that starts at once."""

    def __init__(self, listing: Iterator[Change], name: str, size: int = CHUNK) -> None:
        self.listing = listing  # its `resume` (see connectors/base.ChangeListing) is final once chunks() ends
        self._size = size
        self._queue: queue.Queue[object] = queue.Queue(maxsize=AHEAD)
        self._closed = threading.Event()
        # The run's context (log fields, the run's settings) goes with the requests made in the thread.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._produce,), name=f"mapsync-list-{name}",
                                        daemon=True)
        self._thread.start()

    def chunks(self) -> Iterator[list[Change]]:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item  # type: ignore[misc]  # anything else put is a chunk
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading ahead (the reader is done, or gone), once the request under way has been answered:
        the connector may be closed next, and should not be while the thread still uses it. A request hung
        on a dead network is not waited for beyond JOIN_GRACE: the run stops anyway, and the thread ends
        when that request fails."""
        self._closed.set()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_GRACE)

    def _produce(self) -> None:
        try:
            for chunk in chunked(self.listing, self._size):
                if not self._put(chunk):
                    return
        except BaseException as exc:  # handed to the reader, which raises it where the page would have come
            self._put(_Failed(exc))
            return
        self._put(_END)

    def _put(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False
