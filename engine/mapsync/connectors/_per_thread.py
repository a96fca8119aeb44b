"""A transport that gives each thread a connection pool of its own.

httpcore's pool scans every connection it holds, and asks the OS whether each idle socket is still open,
for every request and again when each answer is closed: with one pool shared by a run's workers, that
scan cost about a fifth of an initial sync's CPU. A thread sends one request at a time, so a pool of its
own holds one connection and the scan is short. Connections in all stay as many as the threads sending
at once: a thread that ends hands its pool (and its kept-alive connection) to the next thread that needs
one, so the workers of the next dataflow reuse them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import httpx


class _Lease:
    """Held by one thread (in a threading.local) for as long as the thread lives; its end frees the pool."""


class PerThreadTransport(httpx.BaseTransport):
    def __init__(self, make: Callable[[], httpx.BaseTransport]) -> None:
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._made: list[httpx.BaseTransport] = []  # every pool, to close them all
        self._free: list[httpx.BaseTransport] = []  # pools whose thread ended
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._own().handle_request(request)

    def _own(self) -> httpx.BaseTransport:
        transport: httpx.BaseTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            with self._lock:
                transport = self._free.pop() if self._free else None
                if transport is None:
                    transport = self._make()
                    self._made.append(transport)
            lease = _Lease()
            weakref.finalize(lease, self._release, transport)  # runs when the thread ends
            self._local.lease, self._local.transport = lease, transport
        return transport

    def _release(self, transport: httpx.BaseTransport) -> None:
        with self._lock:
            if not self._closed:
                self._free.append(transport)

    @property
    def pools(self) -> int:
        """How many pools were made: at most the number of threads that sent requests at once."""
        return len(self._made)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            made, self._made, self._free = self._made, [], []
        for transport in made:
            transport.close()
