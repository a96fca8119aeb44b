"""The HTTP layer's test kit: a client on an httpx.MockTransport whose sleeps are recorded, not slept."""

from __future__ import annotations

from collections.abc import Callable

import httpx

SECRET = "s3cr3t-key-value"
Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps(list[float]):
    """An injected sleep that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def answers(*responses: httpx.Response | Exception) -> Handler:
    """A handler that plays the given answers in order (an exception is raised as if on the wire)."""
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handle
