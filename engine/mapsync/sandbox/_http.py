"""Requests and answers as the emulators see them: plain values, with no socket and no httpx below them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

JsonObject = dict[str, Any]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BadJsonError(ValueError):
    """The request body is not JSON."""


@dataclass(frozen=True)
class Request:
    """One HTTP request, parsed: path is URL-decoded, query keeps the first value of each name."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        if not self.body:
            raise BadJsonError("the request has no body")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadJsonError(f"the body is not JSON: {exc}") from exc


@dataclass
class Response:
    """A JSON answer; body None means an empty body (204). `raw`, when set, is sent as it is instead of
    `body` (the hostile answers: a gzip bomb, JSON nested too deeply)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def payload(self) -> tuple[bytes, dict[str, str]]:
        """The bytes on the wire and the headers to send with them (Content-Length aside)."""
        if self.raw is not None:
            return self.raw, dict(self.headers)
        if self.body is None:
            return b"", dict(self.headers)
        encoded = json.dumps(self.body, ensure_ascii=False).encode()
        return encoded, {"Content-Type": "application/json; charset=utf-8", **self.headers}


class HttpError(Exception):
    """Raised by a handler to answer with an error status and JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.response = Response(status, body, headers or {})


@dataclass(frozen=True)
class WriteLogEntry:
    method: str
    path: str
    body: Any  # the JSON body sent (None when there was none)
    status: int  # the answer's status


def parse_query(query: str) -> dict[str, str]:
    # parse_qs decodes "+" as a space, like the real gateways do: that is why a bare "+" of an
    # offset makes a zone-less datetime that the Tidsbanken emulator refuses.
    return {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}


__all__ = [
    "WRITE_METHODS",
    "BadJsonError",
    "HttpError",
    "JsonObject",
    "Request",
    "Response",
    "WriteLogEntry",
    "parse_query",
]
