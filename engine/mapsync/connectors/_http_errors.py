"""How an HTTP failure becomes a mapsync error: the status sorted into the error tree, the server's own
words kept short, and nothing from the URL but its path."""

from __future__ import annotations

import json as jsonlib
import ssl
from typing import Any

import httpx

from mapsync.errors import (
    AuthError,
    ConflictError,
    ConnectorError,
    FieldError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitError,
    RefusedError,
    ServerError,
    TransportError,
)

MESSAGE_LIMIT = 300  # a server's error page can be long; the first lines say what matters


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind httpx's ConnectError, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def classify_status(status: int) -> tuple[type[ConnectorError], str]:
    if status in (401, 403):
        return AuthError, "the server refused the credentials"
    known: dict[int, tuple[type[ConnectorError], str]] = {
        400: (RefusedError, "the server refused the request"),
        404: (NotFoundError, "not found"),
        408: (TransportError, "the server timed out waiting for the request"),
        409: (ConflictError, "the record exists already"),
        412: (PreconditionFailedError, "the record changed since it was read"),
        422: (RefusedError, "the server refused the record"),
        429: (RateLimitError, "rate limited, still after the retries"),
    }
    if status in known:
        return known[status]
    if status >= 500:
        return ServerError, "server error"
    return ConnectorError, "unexpected answer"


def server_message(response: httpx.Response) -> tuple[str, list[FieldError]]:
    """The server's own words: `{"error": ...}`, `{"errors": [{"field", "message"}]}`, or plain text."""
    try:
        body = jsonlib.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return snippet(response.text), []
    if not isinstance(body, dict):
        return (snippet(response.text) if body is not None else ""), []
    field_errors = _field_errors(body.get("errors"))
    for key in ("error", "message", "detail", "title"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return snippet(value), field_errors
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return snippet(value["message"]), field_errors  # OData's {"error": {"message": ...}}
    return "", field_errors


def _field_errors(errors: Any) -> list[FieldError]:
    if not isinstance(errors, list):
        return []
    found = []
    for item in errors:
        if isinstance(item, dict):
            found.append(FieldError(str(item.get("field") or ""), str(item.get("message") or "")))
        elif isinstance(item, str):
            found.append(FieldError("", item))
    return found


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[:MESSAGE_LIMIT] + "..."


def path_only(path: str) -> str:
    return path.split("?", 1)[0]
