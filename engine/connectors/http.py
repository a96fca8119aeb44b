"""The HTTP layer every connector shares: one httpx.Client per connection, retries, rate limit, errors.

Nothing here knows a system's API. A connector builds an `HttpClient` with its base URL, its
authentication headers and a hint naming its credential settings, and calls `request()`.
Secrets travel in headers only; headers never appear in an error message, and any secret value the
server echoes back is masked before it does.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from mapsync.connectors._ratelimit import TokenBucket, Unlimited
from mapsync.errors import (
    AuthError,
    ConflictError,
    ConnectorError,
    FieldError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
MAX_PAGE_SIZE = 500
BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0
RETRY_AFTER_CAP = 60.0
_MESSAGE_LIMIT = 300  # a server's error page can be long; the first lines say what matters


@dataclass(frozen=True)
class HttpSettings:
    """The transport knobs of one connection block in mapsync.yaml."""

    timeout: float = 30.0
    max_retries: int = 5
    rate_limit: float | None = None
    concurrency: int = 8
    page_size: int = 100

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HttpSettings:
        rate = settings.get("rate_limit")
        return cls(
            timeout=float(settings.get("timeout", cls.timeout)),
            max_retries=int(settings.get("max_retries", cls.max_retries)),
            rate_limit=None if rate is None else float(rate),
            concurrency=max(1, int(settings.get("concurrency", cls.concurrency))),
            page_size=min(MAX_PAGE_SIZE, max(1, int(settings.get("page_size", cls.page_size)))),
        )


# The settings every connection block accepts, as JSON Schema properties; connectors add their own.
HTTP_SETTINGS_PROPERTIES: dict[str, Any] = {
    "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds per request."},
    "max_retries": {"type": "integer", "minimum": 0, "description": "Retries of a transient failure."},
    "rate_limit": {"type": "number", "exclusiveMinimum": 0, "description": "Requests per second."},
    "concurrency": {"type": "integer", "minimum": 1, "description": "Writes in flight."},
    "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "description": "Page size."},
}


def full_jitter_backoff(attempt: int, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before retry number `attempt + 1`: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt)))


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header (delta seconds or an HTTP-date), capped; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(RETRY_AFTER_CAP, max(0.0, seconds))


class HttpClient:
    """One connection's httpx.Client plus retries, rate limit, write bound, counters and error mapping.

    Safe to share between threads: httpx.Client is, and the counters and limiter hold their own locks.
    """

    def __init__(
        self,
        connection: str,
        base_url: str,
        *,
        headers: Mapping[str, str],
        settings: HttpSettings,
        auth_hint: str = "",
        secrets: Iterable[str] = (),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Callable[[int], float] = full_jitter_backoff,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self._auth_hint = auth_hint
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self._sleep = sleep
        self._backoff = backoff
        self._client = httpx.Client(
            base_url=base_url,
            headers=dict(headers),
            timeout=settings.timeout,
            transport=transport,
            follow_redirects=False,
        )
        self._limiter: TokenBucket | Unlimited = (
            TokenBucket(settings.rate_limit, sleep=sleep) if settings.rate_limit else Unlimited()
        )
        self._writes = threading.BoundedSemaphore(settings.concurrency)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request, retrying transient failures; answer a 2xx/3xx response or raise ConnectorError."""
        method = method.upper()
        with self._write_slot(method):
            attempt = 0
            while True:
                self._limiter.acquire()
                self._count(method)
                try:
                    response = _detached(self._client.request(method, path, params=params, json=json, headers=headers))
                except httpx.TransportError as exc:
                    if attempt >= self.settings.max_retries:
                        raise self._transport_error(method, path, exc) from exc
                    self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                if response.status_code in RETRYABLE_STATUSES and attempt < self.settings.max_retries:
                    delay = retry_after_seconds(response.headers.get("Retry-After"))
                    self._sleep(self._backoff(attempt) if delay is None else delay)
                    attempt += 1
                    continue
                if response.is_error:
                    raise self.error_for(response)
                return response

    def json(self, response: httpx.Response) -> Any:
        """The response's JSON body; a malformed body is a ConnectorError, never a traceback."""
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConnectorError(
                "the server's answer is not valid JSON: " + self._mask(_snippet(response.text)),
                connection=self.connection,
                method=response.request.method,
                path=response.request.url.path,
                status=response.status_code,
            ) from exc

    def request_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def close(self) -> None:
        self._client.close()

    def error_for(self, response: httpx.Response) -> ConnectorError:
        """The one place an HTTP error status becomes a mapsync error."""
        status = response.status_code
        server_text, field_errors = _server_message(response)
        server_text = self._mask(server_text)
        field_errors = [FieldError(self._mask(f.field), self._mask(f.message)) for f in field_errors]
        error_class, reason = _classify(status)
        if error_class is AuthError:
            reason = f"{reason}: {server_text}" if server_text else reason
            if self._auth_hint:
                reason += f"; {self._auth_hint}"
        elif server_text:
            reason = f"{reason}: {server_text}"
        return error_class(
            reason,
            connection=self.connection,
            method=response.request.method,
            path=response.request.url.path,
            status=status,
            field_errors=field_errors,
        )

    def _transport_error(self, method: str, path: str, exc: httpx.TransportError) -> TransportError:
        kind = type(exc).__name__
        detail = self._mask(str(exc)) or "no answer"
        return TransportError(
            f"no answer after {self.settings.max_retries + 1} attempts ({kind}: {detail})",
            connection=self.connection,
            method=method,
            path=_path_only(path),
        )

    @contextmanager
    def _write_slot(self, method: str) -> Iterator[None]:
        # Reads are cheap and paged one at a time; only writes are bounded, to spare the target system.
        if method in ("GET", "HEAD", "OPTIONS"):
            yield
            return
        with self._writes:
            yield

    def _count(self, method: str) -> None:
        with self._counts_lock:
            self._counts[method] += 1

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _detached(response: httpx.Response) -> httpx.Response:
    """The response, its body read, with httpx's response <-> stream reference cycle broken.

    Left alone, every page's body waits for the cyclic garbage collector, and a long listing's
    memory grows with the number of pages instead of staying at about one page.
    """
    response.stream = httpx.ByteStream(response.content)
    return response


def _classify(status: int) -> tuple[type[ConnectorError], str]:
    if status in (401, 403):
        return AuthError, "the server refused the credentials"
    known: dict[int, tuple[type[ConnectorError], str]] = {
        400: (ValidationError, "the server refused the request"),
        404: (NotFoundError, "not found"),
        408: (TransportError, "the server timed out waiting for the request"),
        409: (ConflictError, "the record exists already"),
        412: (PreconditionFailedError, "the record changed since it was read"),
        422: (ValidationError, "the server refused the record"),
        429: (RateLimitError, "rate limited, still after the retries"),
    }
    if status in known:
        return known[status]
    if status >= 500:
        return ServerError, "server error"
    return ConnectorError, "unexpected answer"


def _server_message(response: httpx.Response) -> tuple[str, list[FieldError]]:
    """The server's own words: `{"error": ...}`, `{"errors": [{"field", "message"}]}`, or plain text."""
    try:
        body = jsonlib.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return _snippet(response.text), []
    if not isinstance(body, dict):
        return (_snippet(response.text) if body is not None else ""), []
    field_errors = _field_errors(body.get("errors"))
    for key in ("error", "message", "detail", "title"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return _snippet(value), field_errors
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return _snippet(value["message"]), field_errors  # OData's {"error": {"message": ...}}
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


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MESSAGE_LIMIT else flat[:_MESSAGE_LIMIT] + "..."


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


__all__ = [
    "HTTP_SETTINGS_PROPERTIES",
    "MAX_PAGE_SIZE",
    "RETRYABLE_STATUSES",
    "HttpClient",
    "HttpSettings",
    "full_jitter_backoff",
    "retry_after_seconds",
]
