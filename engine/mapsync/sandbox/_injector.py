"""Faults as a wrapper around a handler.

One fault is drawn per request. What can be said with an answer is done here: a delay, a 429, a 503, a
slow answer, and the hostile answers (a redirect, a gzip bomb, JSON nested too deeply). What needs a
connection (dropping it before or after the write, trickling the body a byte at a time) is only decided
here and carried out by whoever holds the connection: the socket server (`_server`) for real, the
in-process transport (`_transport`) as httpx would see it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from mapsync.sandbox._http import WRITE_METHODS, Request, Response
from mapsync.sandbox.faults import Fault, Faults, deep_json, draw_fault, gzip_bomb

Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Outcome:
    """What the connection does with one request: answer `response` (a byte at a time after `trickle`
    seconds' pause each, when set), or close without an answer when `response` is None."""

    response: Response | None
    trickle: float = 0.0


class FaultInjector:
    """Draws faults for the requests to one emulator and counts those injected, by kind."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self._faults = faults
        self._rng = faults.new_rng()
        self._injected: Counter[str] = Counter()

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._rng = faults.new_rng()

    @property
    def injected(self) -> Counter[str]:
        """A snapshot: faults injected so far, by kind (a drop-after-write drawn for a GET is not one)."""
        with self._lock:
            return Counter(self._injected)

    def reset(self) -> None:
        with self._lock:
            self._injected.clear()

    def __call__(self, request: Request, handler: Handler) -> Outcome:
        faults, fault = self._draw(request)
        if faults.latency > 0:
            time.sleep(faults.latency)
        if fault is Fault.DROP:
            return Outcome(None)
        instead = _answer_instead(fault, faults)
        if instead is not None:
            return Outcome(instead)
        if fault is Fault.SLOW:
            time.sleep(faults.slow_seconds)
        response = handler(request)
        if fault is Fault.DROP_AFTER_WRITE and request.method in WRITE_METHODS:
            return Outcome(None)  # handled and stored; the answer is lost
        return Outcome(response, trickle=faults.trickle_seconds if fault is Fault.TRICKLE else 0.0)

    def _draw(self, request: Request) -> tuple[Faults, Fault]:
        with self._lock:
            faults = self._faults
            fault = draw_fault(faults, self._rng) if faults.applies_to(request.path) else Fault.NONE
            if fault is not Fault.NONE and not (fault is Fault.DROP_AFTER_WRITE
                                                and request.method not in WRITE_METHODS):
                self._injected[fault.value] += 1
            return faults, fault


def _answer_instead(fault: Fault, faults: Faults) -> Response | None:
    """The answer given instead of the request's own (which is then not handled at all), if any."""
    if fault is Fault.RATE_LIMIT:
        return Response(429, {"error": "rate limited"}, {"Retry-After": str(faults.retry_after)})
    if fault is Fault.UNAVAILABLE:
        return Response(503, {"error": "service unavailable (injected fault)"})
    if fault is Fault.REDIRECT:
        return Response(302, None, {"Location": faults.redirect_to})
    if fault is Fault.GZIP_BOMB:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return Response(200, headers=headers, raw=gzip_bomb(faults.gzip_bomb_bytes))
    if fault is Fault.DEEP_JSON:
        return Response(200, headers={"Content-Type": "application/json"}, raw=deep_json(faults.deep_json_depth))
    return None


__all__ = ["FaultInjector", "Handler", "Outcome"]
