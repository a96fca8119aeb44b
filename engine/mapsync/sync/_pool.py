"""The executor's thread pool: requests run on worker threads, and their results come back to the calling
thread through a queue, in the order they finish."""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")


class RequestPool(ThreadPoolExecutor):
    """A thread pool whose finished work is collected from a queue (a done-callback per future): O(1) per
    completion, where `concurrent.futures.wait` over the in-flight set costs O(in flight) per call.

    Left by an exception (a lost lock, a failed store), it drops the requests not yet started instead of
    sending them; those in flight finish."""

    def __init__(self, workers: int, *, name: str) -> None:
        super().__init__(workers, thread_name_prefix=name)
        self._finished: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()

    def start(self, work: Callable[..., T], *args: Any) -> Future[T]:
        future = self.submit(work, *args)
        future.add_done_callback(self._finished.put)
        return future

    def finished(self, *, block: bool) -> list[Future[Any]]:
        """What finished since the last call; with `block`, at least one (there must be one in flight)."""
        done = [self._finished.get()] if block else []
        with suppress(queue.Empty):
            while True:
                done.append(self._finished.get_nowait())
        return done

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
