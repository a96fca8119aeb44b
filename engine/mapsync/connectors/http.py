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
import random
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import httpx

from mapsync.connectors._answer import (
    ACCEPT_ENCODING,
    MAX_JSON_DEPTH,
    DeadlineExceeded,
    Decoder,
    Inflater,
    detached,
    nested_deeper_than,
)
from mapsync.connectors._deadline import RunDeadline, RunDeadlineError
from mapsync.connectors._http_errors import certificate_failure, classify_status, path_only, server_message, snippet
from mapsync.connectors._http_settings import HTTP_SETTINGS_PROPERTIES, MAX_PAGE_SIZE, HttpSettings
from mapsync.connectors._per_thread import PerThreadTransport
from mapsync.connectors._ratelimit import TokenBucket, Unlimited
from mapsync.connectors.auth import HeaderAuth
from mapsync.errors import AuthError, ConnectorError, FieldError, TransportError
from mapsync.observe import logs

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0
RETRY_AFTER_CAP = 60.0
URL_CACHE_LIMIT = 256  # distinct paths whose URL is kept (a create's path repeats; an update's id does not)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_SLOT = nullcontext()  # reentrant and stateless: one shared by every thread


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


def _per_thread_pools() -> dict[str, Any]:
    """Client options that give each thread a connection pool of its own (see _per_thread), sharing one
    TLS context. A mount, not `transport=`, so that httpx still routes through the proxies the environment
    names; left out when ALL_PROXY names one for every address (that mount would replace it)."""
    if "all" in urllib.request.getproxies():
        return {}
    context = httpx.create_ssl_context()
    return {"verify": context,
            "mounts": {"all://": PerThreadTransport(lambda: httpx.HTTPTransport(verify=context))}}


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
        auth: httpx.Auth | None = None,
        describe_error: Callable[[httpx.Response], tuple[str, list[FieldError]]] | None = None,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self._auth_hint = auth_hint
        if isinstance(auth, HeaderAuth):  # fixed headers: the client's own, with no auth flow per request
            headers, auth = {**headers, **auth.headers}, None
        self._auth = auth  # closed with the client: an OAuth2 auth holds its token endpoint's connections
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self._sleep = sleep
        self._backoff = backoff
        self._describe_error = describe_error or server_message  # the server's words and refused fields
        self.run_deadline: RunDeadline | None = None  # set by the runner for the length of one run
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
            timeout=settings.timeout,
            transport=transport,
            follow_redirects=False,
            auth=auth,
            **({} if transport is not None else _per_thread_pools()),
        )
        self._limiter: TokenBucket | Unlimited = (
            TokenBucket(settings.rate_limit, sleep=sleep) if settings.rate_limit else Unlimited()
        )
        self._writes = threading.BoundedSemaphore(settings.concurrency)
        self._counts: Counter[str] = Counter()
        self._answered: Counter[tuple[str, str]] = Counter()  # (method, status or "error"/"timeout")
        self._counts_lock = threading.Lock()
        self._urls: dict[str, httpx.URL] = {}  # path -> its URL on base_url (see _url)

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
        # Reads are cheap and paged one at a time; only writes are bounded, to spare the target system.
        with (_NO_SLOT if method in _READS else self._writes):
            attempt = 0
            while True:
                self._limiter.acquire()
                budget = self._budget()
                try:
                    response = self._attempt(method, path, budget, params=params, json=json, headers=headers)
                except httpx.TransportError as exc:
                    self._fail_fast(method, path, exc)
                    if attempt >= self.settings.max_retries:
                        raise self._transport_error(method, path, exc) from exc
                    pause = self._backoff(attempt)
                    logs.http_retry(self.connection, method, path, attempt=attempt + 1, delay=pause, error=exc,
                                    mask=self._mask)
                    self._pause(pause)
                    attempt += 1
                    continue
                if response.status_code in RETRYABLE_STATUSES and attempt < self.settings.max_retries:
                    delay = retry_after_seconds(response.headers.get("Retry-After"))
                    pause = self._backoff(attempt) if delay is None else delay
                    logs.http_retry(self.connection, method, path, attempt=attempt + 1, delay=pause,
                                    status=response.status_code, mask=self._mask)
                    self._pause(pause)
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

    def _attempt(self, method: str, path: str, budget: float, **options: Any) -> httpx.Response:
        """One attempt, counted by method and by how it was answered (for metrics): the status, or a word."""
        answered = "error"  # no answer: refused, dropped, or not HTTP
        started = time.monotonic()
        try:
            response = self._send(method, path, budget, **options)
            answered = str(response.status_code)
            return response
        except httpx.TimeoutException:  # DeadlineExceeded too
            answered = "timeout"
            raise
        except ConnectorError as exc:  # an answer refused while it was read (too large, bad encoding)
            answered = "error" if exc.status is None else str(exc.status)
            raise
        finally:
            self._count(method, answered)
            logs.http_request(self.connection, method, path, options.get("params"), started=started,
                              answered=answered, mask=self._mask)

    def _send(self, method: str, path: str, budget: float, **options: Any) -> httpx.Response:
        """One attempt: the body is streamed so that the deadline and the size cap hold while it arrives."""
        ends = time.monotonic() + budget
        request = self._client.build_request(method, self._url(path), timeout=min(self.settings.timeout, budget),
                                             **options)
        streamed = self._client.send(request, stream=True)
        try:
            body = self._read_body(streamed, ends, budget)
        finally:
            streamed.close()
        return detached(streamed, body)

    def _url(self, path: str) -> httpx.URL:
        """`path` on base_url, as httpx would merge them (base path kept, `path`'s leading `/` dropped; an
        absolute URL as it is). httpx parses both again on every request (about a tenth of a create's CPU):
        a path seen before, such as every create's, is merged once."""
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(path)
            if url.is_relative_url:
                base = self._client.base_url
                url = base.copy_with(raw_path=base.raw_path + url.raw_path.lstrip(b"/"))
            if len(self._urls) >= URL_CACHE_LIMIT:
                self._urls.clear()
            self._urls[path] = url
        return url

    def _read_body(self, streamed: httpx.Response, ends: float, budget: float) -> bytes:
        if streamed.is_stream_consumed:  # a test transport's answer, built in memory and read already
            self._check_size(streamed, len(streamed.content))
            return streamed.content
        decoder = self._decoder_for(streamed)
        cap = self.settings.max_answer_bytes
        pieces: list[bytes] = []  # joined once at the end: an answer in one piece is then never copied
        size = 0
        for raw in streamed.iter_raw():
            if time.monotonic() > ends:
                raise DeadlineExceeded(f"the answer took longer than {budget:g}s", request=streamed.request)
            for piece in decoder.decode(raw):
                pieces.append(piece)
                size += len(piece)
                if size > cap:
                    self._check_size(streamed, size)
        pieces.append(decoder.flush())
        body = b"".join(pieces)
        self._check_size(streamed, len(body))
        return body

    def _check_size(self, streamed: httpx.Response, size: int) -> None:
        cap = self.settings.max_answer_bytes
        if size > cap:
            raise self._answer_error(streamed, f"the answer is larger than max_answer_bytes ({cap} bytes, after "
                                               "decompression); stopped reading it")

    def _decoder_for(self, streamed: httpx.Response) -> Decoder:
        encoding = streamed.headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return Decoder()
        if encoding in ("gzip", "x-gzip", "deflate"):
            return Inflater(encoding, lambda reason: self._answer_error(streamed, reason))
        raise self._answer_error(streamed, f"the answer has an unsupported Content-Encoding {encoding!r}")

    def _answer_error(self, streamed: httpx.Response, reason: str) -> ConnectorError:
        return ConnectorError(self._mask(reason), connection=self.connection, method=streamed.request.method,
                              path=streamed.request.url.path, status=streamed.status_code)

    def _fail_fast(self, method: str, path: str, exc: httpx.TransportError) -> None:
        """Failures that another attempt cannot mend: the run is out of time, or the certificate is refused."""
        if self.run_deadline is not None:
            self.run_deadline.check()
        refused = certificate_failure(exc)
        if refused is not None:
            detail = refused.verify_message or refused.reason or str(refused)
            raise ConnectorError(
                f"TLS certificate verification failed for host {self._client.base_url.host}: {self._mask(detail)}",
                connection=self.connection, method=method, path=path_only(path),
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
                "the server's answer is not valid JSON: " + self._mask(snippet(response.text)),
                connection=self.connection,
                method=response.request.method,
                path=response.request.url.path,
                status=response.status_code,
            ) from exc
        if nested_deeper_than(body, MAX_JSON_DEPTH, response.content):
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

    @property
    def base_url(self) -> httpx.URL:
        return self._client.base_url

    def request_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def request_status_counts(self) -> dict[str, dict[str, int]]:
        """Requests sent so far per method and answer: a status ("200") or "error"/"timeout" (no answer)."""
        with self._counts_lock:
            counts: dict[str, dict[str, int]] = {}
            for (method, answered), n in self._answered.items():
                counts.setdefault(method, {})[answered] = n
            return counts

    def close(self) -> None:
        self._client.close()
        close_auth = getattr(self._auth, "close", None)
        if callable(close_auth):
            close_auth()

    def error_for(self, response: httpx.Response) -> ConnectorError:
        """The one place an HTTP error status (or a redirect, never followed) becomes a mapsync error."""
        status = response.status_code
        if 300 <= status < 400:
            return self._redirect_error(response)
        server_text, field_errors = self._describe_error(response)
        server_text = self._mask(server_text)
        field_errors = [FieldError(self._mask(f.field), self._mask(f.message)) for f in field_errors]
        error_class, reason = classify_status(status)
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
        if isinstance(exc, DeadlineExceeded):
            return TransportError(
                f"the answer did not finish within request_deadline {self.settings.request_deadline:g}s "
                f"({attempts} attempt{'s' if attempts > 1 else ''})",
                connection=self.connection, method=method, path=path_only(path),
            )
        kind = type(exc).__name__
        detail = self._mask(str(exc)) or "no answer"
        return TransportError(
            f"no answer after {attempts} attempts ({kind}: {detail})",
            connection=self.connection,
            method=method,
            path=path_only(path),
        )

    def _count(self, method: str, answered: str) -> None:
        with self._counts_lock:
            self._counts[method] += 1
            self._answered[method, answered] += 1

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
