"""The emulators in process: an `httpx.MockTransport` over the same exchange the socket server runs, so
connector tests need no socket. A dropped connection raises what httpx raises when a server hangs up; a
trickled body arrives whole (there is no connection to trickle on)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import httpx

from mapsync.sandbox._http import Request, parse_query
from mapsync.sandbox._server import Exchange


class _Body(httpx.SyncByteStream):
    """The answer's bytes as a stream, so the client reads (and inflates) them itself, under its own caps."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def __iter__(self) -> Iterator[bytes]:
        if self._payload:
            yield self._payload


def _request(request: httpx.Request) -> Request:
    return Request(
        method=request.method,
        path=unquote(request.url.raw_path.split(b"?", 1)[0].decode("ascii")),
        query=parse_query(request.url.query.decode("ascii")),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=request.read(),
    )


def mock_transport(exchange: Exchange) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        outcome = exchange(_request(request))
        if outcome.response is None:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        payload, headers = outcome.response.payload()
        headers["Content-Length"] = str(len(payload))
        return httpx.Response(outcome.response.status, headers=headers, stream=_Body(payload), request=request)

    return httpx.MockTransport(handle)


__all__ = ["mock_transport"]
