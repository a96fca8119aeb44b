"""The HTTP layer every connector shares: one httpx.Client per connection, retries, rate limit, errors.

Nothing here knows a system's API. A connector builds an `HttpClient` with its base URL, its
authentication headers and a hint naming its credential settings, and calls `request()`.
Secrets travel in headers only; headers never appear in an error message, and any secret value the
server echoes back is masked before it does.

A hostile or broken server cannot hang a run or exhaust its memory: every request has a total deadline
(httpx's timeout is per read, so a server trickling a byte at a time would never time out), the answer is
decoded here, a bounded step at a time, and refused once it grows past a cap (a small gzip answer may
inflate a thousandfold), and a run's own deadline caps every request made for it.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import random
import ssl
import threading
import time
import zlib
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
    MapsyncError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
MAX_PAGE_SIZE = 500
DEFAULT_MAX_PAGES = 100_000  # a sanity cap: 10 million records at the default page size
BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0
RETRY_AFTER_CAP = 60.0
_MESSAGE_LIMIT = 300  # a server's error page can be long; the first lines say what matters
_INFLATE_STEP = 64 * 1024  # decoded bytes produced at a time, so that a gzip bomb is caught before it grows
# Only encodings decoded here under the size cap; httpx would otherwise also offer br/zstd when installed.
_ACCEPT_ENCODING = "gzip, deflate"
# Deeper answers are refused: the parser would survive a few hundred levels, but the recursive code that
# handles records afterwards (copies, JMESPath, the store's encoder) might not. Records nest a few levels.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class HttpSettings:
    """The transport knobs of one connection block in mapsync.yaml."""

    timeout: float = 30.0
    max_retries: int = 5
    rate_limit: float | None = None
    concurrency: int = 8
    page_size: int = 100
    request_deadline: float = 120.0
    max_answer_bytes: int = 64 * 1024 * 1024
    max_pages: int = DEFAULT_MAX_PAGES

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HttpSettings:
        rate = settings.get("rate_limit")
        return cls(
            timeout=float(settings.get("timeout", cls.timeout)),
            max_retries=int(settings.get("max_retries", cls.max_retries)),
            rate_limit=None if rate is None else float(rate),
            concurrency=max(1, int(settings.get("concurrency", cls.concurrency))),
            page_size=min(MAX_PAGE_SIZE, max(1, int(settings.get("page_size", cls.page_size)))),
            request_deadline=float(settings.get("request_deadline", cls.request_deadline)),
            max_answer_bytes=int(settings.get("max_answer_bytes", cls.max_answer_bytes)),
            max_pages=max(1, int(settings.get("max_pages", cls.max_pages))),
        )


# The settings every connection block accepts, as JSON Schema properties; connectors add their own.
HTTP_SETTINGS_PROPERTIES: dict[str, Any] = {
    "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds per request."},
    "max_retries": {"type": "integer", "minimum": 0, "description": "Retries of a transient failure."},
    "rate_limit": {"type": "number", "exclusiveMinimum": 0, "description": "Requests per second."},
    "concurrency": {"type": "integer", "minimum": 1, "description": "Writes in flight."},
    "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "description": "Page size."},
    "request_deadline": {"type": "number", "exclusiveMinimum": 0,
                         "description": "Seconds one request may take in all, its answer included."},
    "max_answer_bytes": {"type": "integer", "minimum": 1,
                         "description": "Largest answer accepted, in bytes after decompression."},
    "max_pages": {"type": "integer", "minimum": 1,
                  "description": "Pages one listing may take before it is stopped as endless."},
}


class RunDeadlineError(MapsyncError):
    """The run reached its --max-duration: the dataflow being synced stops, the ones after it are not run."""


class RunDeadline:
    """The wall-clock end of one run, shared by the runner, the executor and every request of the run."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self._ends

    def error(self) -> RunDeadlineError:
        return RunDeadlineError(f"the run reached --max-duration {self.seconds:g}s")

    def check(self) -> None:
        if self.expired():
            raise self.error()


class _DeadlineExceeded(httpx.TimeoutException):
    """The answer did not finish within the request's deadline: retried like any other timeout."""


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
        self.run_deadline: RunDeadline | None = None  # set by the runner for the length of one run
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Accept-Encoding": _ACCEPT_ENCODING, **headers},
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
        """Send one request, retrying transient failures; answer a 2xx response or raise a MapsyncError.

        Raises RunDeadlineError (not retried) once the run's deadline has passed.
        """
        method = method.upper()
        with self._write_slot(method):
            attempt = 0
            while True:
                self._limiter.acquire()
                budget = self._budget()
                self._count(method)
                try:
                    response = self._send(method, path, budget, params=params, json=json, headers=headers)
                except httpx.TransportError as exc:
                    self._fail_fast(method, path, exc)
                    if attempt >= self.settings.max_retries:
                        raise self._transport_error(method, path, exc) from exc
                    self._pause(self._backoff(attempt))
                    attempt += 1
                    continue
                if response.status_code in RETRYABLE_STATUSES and attempt < self.settings.max_retries:
                    delay = retry_after_seconds(response.headers.get("Retry-After"))
                    self._pause(self._backoff(attempt) if delay is None else delay)
                    attempt += 1
                    continue
                if response.is_error or 300 <= response.status_code < 400:
                    raise self.error_for(response)
                return response

    def _budget(self) -> float:
        """Seconds the next attempt may take: its own deadline, never past the run's."""
        if self.run_deadline is None:
            return self.settings.request_deadline
        self.run_deadline.check()
        return min(self.settings.request_deadline, self.run_deadline.remaining())

    def _pause(self, seconds: float) -> None:
        # A wait that would outlast the run is cut short: the next attempt then stops the dataflow.
        if self.run_deadline is not None:
            seconds = min(seconds, self.run_deadline.remaining())
        self._sleep(seconds)

    def _send(self, method: str, path: str, budget: float, **options: Any) -> httpx.Response:
        """One attempt: the body is streamed so that the deadline and the size cap hold while it arrives."""
        ends = time.monotonic() + budget
        request = self._client.build_request(method, path, timeout=min(self.settings.timeout, budget), **options)
        streamed = self._client.send(request, stream=True)
        try:
            body = self._read_body(streamed, ends, budget)
        finally:
            streamed.close()
        return _detached(streamed, body)

    def _read_body(self, streamed: httpx.Response, ends: float, budget: float) -> bytes:
        if streamed.is_stream_consumed:  # a test transport's answer, built in memory and read already
            self._check_size(streamed, len(streamed.content))
            return streamed.content
        decoder = self._decoder_for(streamed)
        body = bytearray()
        for raw in streamed.iter_raw():
            if time.monotonic() > ends:
                raise _DeadlineExceeded(f"the answer took longer than {budget:g}s", request=streamed.request)
            for piece in decoder.decode(raw):
                body += piece
                self._check_size(streamed, len(body))
        body += decoder.flush()
        self._check_size(streamed, len(body))
        return bytes(body)

    def _check_size(self, streamed: httpx.Response, size: int) -> None:
        cap = self.settings.max_answer_bytes
        if size > cap:
            raise self._answer_error(streamed, f"the answer is larger than max_answer_bytes ({cap} bytes, after "
                                               "decompression); stopped reading it")

    def _decoder_for(self, streamed: httpx.Response) -> _Decoder:
        encoding = streamed.headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return _Decoder()
        if encoding in ("gzip", "x-gzip", "deflate"):
            return _Inflater(encoding, lambda reason: self._answer_error(streamed, reason))
        raise self._answer_error(streamed, f"the answer has an unsupported Content-Encoding {encoding!r}")

    def _answer_error(self, streamed: httpx.Response, reason: str) -> ConnectorError:
        return ConnectorError(self._mask(reason), connection=self.connection, method=streamed.request.method,
                              path=streamed.request.url.path, status=streamed.status_code)

    def _fail_fast(self, method: str, path: str, exc: httpx.TransportError) -> None:
        """Failures that another attempt cannot mend: the run is out of time, or the certificate is refused."""
        if self.run_deadline is not None:
            self.run_deadline.check()
        refused = _certificate_failure(exc)
        if refused is not None:
            detail = refused.verify_message or refused.reason or str(refused)
            raise ConnectorError(
                f"TLS certificate verification failed for host {self._client.base_url.host}: {self._mask(detail)}",
                connection=self.connection, method=method, path=_path_only(path),
            ) from exc

    def json(self, response: httpx.Response) -> Any:
        """The response's JSON body; a malformed body is a ConnectorError, never a traceback."""
        try:
            body = response.json()
        except RecursionError as exc:
            # Caught here, the error fails this one listing; uncaught, it would end the whole run.
            raise self._too_deep(response) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConnectorError(
                "the server's answer is not valid JSON: " + self._mask(_snippet(response.text)),
                connection=self.connection,
                method=response.request.method,
                path=response.request.url.path,
                status=response.status_code,
            ) from exc
        if _nested_deeper_than(body, MAX_JSON_DEPTH):
            raise self._too_deep(response)
        return body

    def _too_deep(self, response: httpx.Response) -> ConnectorError:
        return ConnectorError(
            f"the answer is nested too deeply to read (more than {MAX_JSON_DEPTH} levels)",
            connection=self.connection,
            method=response.request.method,
            path=response.request.url.path,
            status=response.status_code,
        )

    def request_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def close(self) -> None:
        self._client.close()

    def error_for(self, response: httpx.Response) -> ConnectorError:
        """The one place an HTTP error status (or a redirect, never followed) becomes a mapsync error."""
        status = response.status_code
        if 300 <= status < 400:
            return self._redirect_error(response)
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

    def _redirect_error(self, response: httpx.Response) -> ConnectorError:
        # Only the host is named: the rest of the target URL may carry a session or a token.
        status = response.status_code
        location = response.headers.get("Location")
        if not location:
            reason = f"the server answered with a redirect ({status}) without a Location"
        else:
            try:
                host = response.request.url.join(location).host or "?"
            except httpx.InvalidURL:
                host = "an unreadable address"
            reason = (f"the server answered with a redirect ({status}) to host {self._mask(host)}; "
                      "mapsync does not follow redirects: check base_url")
        return ConnectorError(reason, connection=self.connection, method=response.request.method,
                              path=response.request.url.path, status=status)

    def _transport_error(self, method: str, path: str, exc: httpx.TransportError) -> TransportError:
        attempts = self.settings.max_retries + 1
        if isinstance(exc, _DeadlineExceeded):
            return TransportError(
                f"the answer did not finish within request_deadline {self.settings.request_deadline:g}s "
                f"({attempts} attempt{'s' if attempts > 1 else ''})",
                connection=self.connection, method=method, path=_path_only(path),
            )
        kind = type(exc).__name__
        detail = self._mask(str(exc)) or "no answer"
        return TransportError(
            f"no answer after {attempts} attempts ({kind}: {detail})",
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


def _detached(streamed: httpx.Response, body: bytes) -> httpx.Response:
    """A plain response holding the decoded body, with httpx's response <-> stream reference cycle broken.

    Left alone, every page's body waits for the cyclic garbage collector, and a long listing's
    memory grows with the number of pages instead of staying at about one page.
    """
    streamed.stream = httpx.ByteStream(b"")
    # The body is decoded already: the encoding and length headers no longer describe it.
    headers = [(name, value) for name, value in streamed.headers.multi_items()
               if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    return httpx.Response(streamed.status_code, headers=headers, content=body, request=streamed.request)


class _Decoder:
    """An answer without Content-Encoding: the bytes as they come."""

    def decode(self, data: bytes) -> Iterator[bytes]:
        yield data

    def flush(self) -> bytes:
        return b""


class _Inflater(_Decoder):
    """gzip or deflate, inflated at most _INFLATE_STEP bytes at a time, so the size cap stops a bomb early."""

    def __init__(self, encoding: str, error: Callable[[str], ConnectorError]) -> None:
        deflate = encoding == "deflate"
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if deflate else zlib.MAX_WBITS | 16)
        # "deflate" is often sent raw, without the zlib header the standard asks for: the first bytes tell.
        self._may_be_raw = deflate
        self._error = error

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            yield self._inflate(data)
            while self._zlib.unconsumed_tail:
                yield self._zlib.decompress(self._zlib.unconsumed_tail, _INFLATE_STEP)
        except zlib.error as exc:
            raise self._error(f"the answer's compressed body is broken ({exc})") from exc

    def _inflate(self, data: bytes) -> bytes:
        if self._may_be_raw:
            self._may_be_raw = False
            try:
                return self._zlib.decompress(data, _INFLATE_STEP)
            except zlib.error:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._zlib.decompress(data, _INFLATE_STEP)

    def flush(self) -> bytes:
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise self._error(f"the answer's compressed body is broken ({exc})") from exc


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels; iterative, so it cannot overflow itself."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind httpx's ConnectError, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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
    except (ValueError, UnicodeDecodeError, RecursionError):
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
    "MAX_JSON_DEPTH",
    "MAX_PAGE_SIZE",
    "RETRYABLE_STATUSES",
    "HttpClient",
    "HttpSettings",
    "RunDeadline",
    "RunDeadlineError",
    "full_jitter_backoff",
    "retry_after_seconds",
]
