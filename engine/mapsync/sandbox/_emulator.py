"""The base of both emulators: a plain handler over the emulator's own data.

`handle(request) -> response` answers one request (credentials, routing, the emulator's errors);
`exchange(request)` is what a connection runs: it counts the request and puts the faults around
`handle`; `transport()` serves it in process (an `httpx.MockTransport`), `start()` on a socket.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from email.utils import format_datetime

import httpx

from mapsync.sandbox._http import WRITE_METHODS, BadJsonError, HttpError, JsonObject, Request, Response, WriteLogEntry
from mapsync.sandbox._injector import FaultInjector, Outcome
from mapsync.sandbox._server import SocketServer
from mapsync.sandbox._time import WriteClock
from mapsync.sandbox._transport import mock_transport
from mapsync.sandbox.faults import Faults

# refuse(): (entity or resource, body) -> a reason to refuse the write, or None to accept it.
RefusePredicate = Callable[[str, JsonObject], "str | None"]


class Emulator(ABC):
    """Data lock, write clock, counters and faults of one emulated system; subclasses route requests."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None) -> None:
        self.host = host
        self.port = port
        self._lock = threading.RLock()  # guards the emulator's data
        self._stats_lock = threading.Lock()
        self._request_count = 0
        self._requests: Counter[tuple[str, str]] = Counter()
        self._writes: list[WriteLogEntry] = []  # every write answered, with its body (tests compare plans)
        self._injector = FaultInjector(faults or Faults())
        self._refuse: RefusePredicate | None = None
        self._server: SocketServer | None = None
        self._clock = WriteClock()

    # -- serving

    def handle(self, request: Request) -> Response:
        """The answer to one request, faults aside."""
        try:
            refusal = self.authenticate(request)
            if refusal is not None:
                return refusal
            return self.route(request)
        except HttpError as exc:
            return exc.response
        except Exception as exc:  # a bug in the emulator: answer 500 rather than hang the client
            return Response(500, {"error": f"emulator error: {type(exc).__name__}: {exc}"})

    def exchange(self, request: Request) -> Outcome:
        """One request as a connection sees it: counted, faults drawn, handled, writes logged."""
        with self._stats_lock:
            self._request_count += 1
            self._requests[(request.method, request.path)] += 1
        return self._injector(request, self._handle_and_log)

    def _handle_and_log(self, request: Request) -> Response:
        response = self.handle(request)  # looked up per call: tests may wrap it on the instance
        # Stamped with the clock the records are, as a real server's Date and timestamps share one clock.
        response = replace(response, headers={"Date": format_datetime(self._clock.now(), usegmt=True),
                                              **response.headers})
        if request.method in WRITE_METHODS:
            try:
                body = request.json() if request.body else None
            except BadJsonError:
                body = None
            with self._stats_lock:
                self._writes.append(WriteLogEntry(request.method, request.path, body, response.status))
        return response

    def transport(self) -> httpx.MockTransport:
        """This emulator in process, for an httpx client (`transport=`): no socket, same answers and faults."""
        return mock_transport(self.exchange)

    # -- lifecycle on a socket

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = SocketServer(self.exchange, host=self.host, port=self.port, name=type(self).__name__)
        self.port = self._server.port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.url

    # -- faults, clock and counters

    @property
    def faults(self) -> Faults:
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector.faults = faults

    @property
    def clock(self) -> Callable[[], datetime] | None:
        """None means real time (strictly increasing); set a callable to choose write timestamps."""
        return self._clock.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime] | None) -> None:
        self._clock.clock = clock

    @property
    def request_count(self) -> int:
        with self._stats_lock:
            return self._request_count

    @property
    def requests(self) -> Counter[tuple[str, str]]:
        """A snapshot: requests received per (method, path without query)."""
        with self._stats_lock:
            return Counter(self._requests)

    @property
    def write_log(self) -> list[WriteLogEntry]:
        """A snapshot: every write request answered, in order, with its JSON body and the answer's status."""
        with self._stats_lock:
            return list(self._writes)

    @property
    def faults_injected(self) -> Counter[str]:
        """A snapshot: faults injected so far, by kind (a drop-after-write drawn for a GET is not one)."""
        return self._injector.injected

    def reset_counts(self) -> None:
        with self._stats_lock:
            self._request_count = 0
            self._requests.clear()
            self._writes.clear()
        self._injector.reset()

    def refuse(self, predicate: RefusePredicate | None) -> None:
        """Make writes over HTTP fail when predicate(entity or resource, body) returns a reason (Tidsbanken
        answers 400, Custompms 422); None clears it. Direct calls are never refused."""
        with self._lock:
            self._refuse = predicate

    def refusal(self, name: str, body: JsonObject) -> str | None:
        """The test's reason to refuse this write body, if any."""
        predicate = self._refuse
        return None if predicate is None else predicate(name, dict(body))

    @abstractmethod
    def authenticate(self, request: Request) -> Response | None:
        """A 401 answer when the credentials are wrong, else None."""

    @abstractmethod
    def route(self, request: Request) -> Response:
        """The answer to an authenticated request."""


__all__ = ["Emulator", "RefusePredicate"]
