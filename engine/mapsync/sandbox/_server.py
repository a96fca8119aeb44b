"""Shared plumbing of the emulators: the HTTP server, requests and JSON answers, fault injection,
request counting, the write clock, the sorted (modified, id) index used for paging, and a small
validator for the entity schemas in `schemas/`.

Each emulator subclasses `EmulatorServer` and implements `handle(request) -> Response`; everything
about sockets, keep-alive, faults and counting lives here.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import sys
import threading
import time
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from mapsync.errors import FieldError
from mapsync.sandbox.faults import Fault, Faults, deep_json, draw_fault, gzip_bomb

JsonObject = dict[str, Any]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# refuse(): (entity or resource, body) -> a reason to refuse the write, or None to accept it.
RefusePredicate = Callable[[str, "JsonObject"], "str | None"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- requests and answers ---------------------------------------------------------------------------


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
    """A JSON answer; body None means an empty body (204)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised by a handler to answer with an error status and JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.response = Response(status, body, headers or {})


def parse_query(query: str) -> dict[str, str]:
    # parse_qs decodes "+" as a space, like the real gateways do: that is why a bare "+" of an
    # offset makes a zone-less datetime that the Tidsbanken emulator refuses.
    return {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}


# --- time ---------------------------------------------------------------------------------------------


def to_micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, unlike float timestamps)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def format_utc_millis(micros: int) -> str:
    """2024-05-01T10:00:00.123Z"""
    return from_micros(micros).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_aware_datetime(text: str) -> datetime | None:
    """An ISO 8601 datetime that carries a zone (Z or an offset), else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class WriteClock:
    """Hands out write timestamps (microseconds, truncated to whole milliseconds).

    By default real time, but strictly increasing by at least 1 ms per write so that two writes never
    share a timestamp by accident. Tests set `clock` to force equal (or chosen) timestamps; a set
    clock is used as it is.
    """

    def __init__(self) -> None:
        self.clock: Callable[[], datetime] | None = None
        self._last = 0
        self._lock = threading.Lock()

    def observe(self, micros: int) -> None:
        """Make later real-time stamps come after an existing (e.g. seeded) one."""
        with self._lock:
            self._last = max(self._last, micros)

    def next(self) -> int:
        with self._lock:
            if self.clock is not None:
                stamp = to_micros(self.clock()) // 1000 * 1000
            else:
                stamp = max(to_micros(datetime.now(UTC)) // 1000 * 1000, self._last + 1000)
            self._last = max(self._last, stamp)
            return stamp


# --- the paging index ---------------------------------------------------------------------------------


class KeysetIndex:
    """Ids kept sorted by (modified micros, id), so listing pages are bisect + slice, not a sort.

    Writes usually land at the end (the newest timestamp), which keeps `insort` cheap even for
    100,000 records.
    """

    def __init__(self) -> None:
        self._keys: list[tuple[int, str]] = []
        self._stamp: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def load(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Bulk insert (seeding): one sort instead of one insort per record."""
        for record_id, micros in pairs:
            self._remove_key(record_id)
            self._stamp[record_id] = micros
        self._keys = sorted((micros, record_id) for record_id, micros in self._stamp.items())

    def put(self, record_id: str, micros: int) -> None:
        self._remove_key(record_id)
        self._stamp[record_id] = micros
        insort(self._keys, (micros, record_id))

    def discard(self, record_id: str) -> None:
        self._remove_key(record_id)

    def stamp(self, record_id: str) -> int | None:
        return self._stamp.get(record_id)

    def _remove_key(self, record_id: str) -> None:
        micros = self._stamp.pop(record_id, None)
        if micros is None:
            return
        position = bisect_left(self._keys, (micros, record_id))
        del self._keys[position]

    def first_at_or_after(self, micros: int) -> int:
        """Position of the first key with a stamp >= micros."""
        # (micros,) sorts before every (micros, id): a shorter tuple that is a prefix is smaller.
        return bisect_left(self._keys, (micros,))

    def first_after_key(self, key: tuple[int, str]) -> int:
        return bisect_right(self._keys, key)

    def keys_from(self, position: int) -> Iterator[tuple[int, str]]:
        for index in range(position, len(self._keys)):
            yield self._keys[index]

    def slice(self, start: int, stop: int) -> list[tuple[int, str]]:
        return self._keys[start:stop]

    def ordered_ids(self) -> list[str]:
        return [record_id for _, record_id in self._keys]


# --- entity schemas -----------------------------------------------------------------------------------

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def json_type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "object", "array"):
        if _JSON_TYPES[name](value):
            return name
    return type(value).__name__


@dataclass(frozen=True)
class PropertyRule:
    """The subset of JSON Schema that the entity schemas use, for one property."""

    types: tuple[str, ...]
    enum: tuple[Any, ...] | None = None
    pattern: re.Pattern[str] | None = None
    min_length: int | None = None
    max_length: int | None = None
    format: str | None = None
    nested: ObjectSchema | None = None

    @property
    def nullable(self) -> bool:
        return "null" in self.types

    def problems(self, value: Any, path: str) -> list[FieldError]:
        if not any(_JSON_TYPES[t](value) for t in self.types):
            expected = " or ".join(self.types)
            return [FieldError(path, f"expected {expected}, got {json_type_name(value)}")]
        if value is None:
            return []
        if isinstance(value, dict) and self.nested is not None:
            return self.nested.problems(value, prefix=f"{path}.", require=False)
        if isinstance(value, str):
            return self._string_problems(value, path)
        return []

    def _string_problems(self, value: str, path: str) -> list[FieldError]:
        found: list[FieldError] = []
        if self.enum is not None and value not in self.enum:
            found.append(FieldError(path, "must be one of: " + ", ".join(map(str, self.enum))))
        if self.min_length is not None and len(value) < self.min_length:
            found.append(FieldError(path, f"must be at least {self.min_length} character(s) long"))
        if self.max_length is not None and len(value) > self.max_length:
            found.append(FieldError(path, f"must be at most {self.max_length} characters long"))
        if self.pattern is not None and not self.pattern.fullmatch(value):
            found.append(FieldError(path, f"must match the pattern ^{self.pattern.pattern}$"))
        if self.format == "date" and not _is_date(value):
            found.append(FieldError(path, "must be a date YYYY-MM-DD"))
        if self.format == "date-time" and parse_aware_datetime(value) is None:
            found.append(FieldError(path, "must be an ISO 8601 date-time with a zone offset"))
        return found


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ObjectSchema:
    """An object schema: its properties in schema order, required names and server-set fields."""

    title: str
    properties: dict[str, PropertyRule]
    required: tuple[str, ...] = ()
    server_fields: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, raw: JsonObject) -> ObjectSchema:
        properties = {name: _rule_from_json(spec) for name, spec in raw.get("properties", {}).items()}
        return cls(
            title=str(raw.get("title", "")),
            properties=properties,
            required=tuple(raw.get("required", ())),
            server_fields=frozenset(raw.get("x-server-fields", ())),
        )

    def problems(self, body: JsonObject, *, prefix: str = "", require: bool = True) -> list[FieldError]:
        """Every problem of a body at once: unknown names, wrong types and formats, missing names."""
        found: list[FieldError] = []
        for name, value in body.items():
            rule = self.properties.get(name)
            if rule is None:
                found.append(FieldError(prefix + name, "unknown property"))
            else:
                found.extend(rule.problems(value, prefix + name))
        if require:
            found.extend(FieldError(prefix + name, "is required") for name in self.required if name not in body)
        return found


def _rule_from_json(spec: JsonObject) -> PropertyRule:
    raw_type = spec.get("type", "string")
    types = (raw_type,) if isinstance(raw_type, str) else tuple(raw_type)
    pattern = spec.get("pattern")
    nested = None
    if "object" in types:
        nested = ObjectSchema.from_json({"properties": spec.get("properties", {})})
    # Schema patterns are anchored with ^...$; fullmatch also refuses a trailing newline.
    compiled = re.compile(pattern.removeprefix("^").removesuffix("$")) if pattern else None
    return PropertyRule(
        types=types,
        enum=tuple(spec["enum"]) if "enum" in spec else None,
        pattern=compiled,
        min_length=spec.get("minLength"),
        max_length=spec.get("maxLength"),
        format=spec.get("format"),
        nested=nested,
    )


def load_schema(system: str, entity: str) -> ObjectSchema:
    """The entity schema shipped as mapsync.schemas/<system>/<entity>.json."""
    text = resources.files("mapsync.schemas").joinpath(system, f"{entity}.json").read_text("utf-8")
    return ObjectSchema.from_json(json.loads(text))


@dataclass(frozen=True)
class WriteLogEntry:
    method: str
    path: str
    body: Any  # the JSON body sent (None when there was none)
    status: int  # the answer's status


# --- the HTTP server ----------------------------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of parallel clients must not be refused at connect

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_changed = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (timeouts, retries under faults) is normal here, not worth
        # a traceback on stderr; anything else is an emulator bug and is shown.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._open_changed:
            self._open.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._open_changed:
            self._open.discard(connection)
            self._open_changed.notify_all()

    def close_open_connections(self, wait: float) -> None:
        """Wake handler threads parked on idle keep-alive connections so they close their sockets."""
        with self._open_changed:
            for connection in list(self._open):
                with contextlib.suppress(OSError):  # already closed by the peer
                    connection.shutdown(socket.SHUT_RDWR)
            self._open_changed.wait_for(lambda: not self._open, timeout=wait)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY, headers and body in two segments meet the client's delayed ACK: +40 ms.
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection is closed after this many seconds

    def _http_server(self) -> _HttpServer:
        return cast(_HttpServer, self.server)

    def setup(self) -> None:
        super().setup()
        self._http_server().track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._http_server().untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests and the CLI would drown in access logs

    def do_GET(self) -> None:
        self._http_server().emulator.serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def read_request(self) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        return Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_query(parts.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )

    def write_response(self, response: Response, *, trickle: float = 0.0) -> None:
        payload = b"" if response.body is None else json.dumps(response.body, ensure_ascii=False).encode()
        headers = dict(response.headers)
        if response.body is not None:
            headers = {"Content-Type": "application/json; charset=utf-8", **headers}
        self.write_raw(response.status, payload, headers, trickle=trickle)

    def write_raw(self, status: int, payload: bytes, headers: dict[str, str], *, trickle: float = 0.0) -> None:
        """Headers at once, then the body: whole, or a byte at a time after a `trickle` seconds' pause each."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not trickle:
            if payload:
                self.wfile.write(payload)
            return
        self.wfile.flush()
        for index in range(len(payload)):
            time.sleep(trickle)
            self.wfile.write(payload[index:index + 1])  # raises once the client has hung up

    def drop(self) -> None:
        """Close the connection without an answer: the client sees the server disconnect."""
        self.close_connection = True


class EmulatorServer(ABC):
    """Base of both emulators: one HTTP server thread, faults, counters and a data lock."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None) -> None:
        self.host = host
        self.port = port
        self._lock = threading.RLock()  # guards the emulator's data
        self._stats_lock = threading.Lock()
        self._request_count = 0
        self._requests: Counter[tuple[str, str]] = Counter()
        self._writes: list[WriteLogEntry] = []  # every write answered, with its body (tests compare plans)
        self._injected: Counter[str] = Counter()  # faults injected, by kind ("429", "503", "drop", ...)
        self._refuse: RefusePredicate | None = None
        self._faults = faults or Faults()
        self._rng = self._faults.new_rng()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._clock = WriteClock()

    # -- lifecycle

    def start(self) -> None:
        if self._httpd is not None:
            return
        self._httpd = _HttpServer((self.host, self.port), self)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},  # how quickly stop() returns
            name=f"{type(self).__name__}:{self.port}", daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_open_connections(wait=2.0)
        if thread is not None:
            thread.join()
        self._httpd, self._thread = None, None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    # -- faults, clock and counters

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._stats_lock:
            self._faults = faults
            self._rng = faults.new_rng()

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

    def refuse(self, predicate: RefusePredicate | None) -> None:
        """Make writes over HTTP fail when predicate(entity or resource, body) returns a reason (Tidsbanken
        answers 400, Custompms 422); None clears it. Direct calls are never refused."""
        with self._lock:
            self._refuse = predicate

    def refusal(self, name: str, body: JsonObject) -> str | None:
        """The test's reason to refuse this write body, if any."""
        predicate = self._refuse
        return None if predicate is None else predicate(name, dict(body))

    @property
    def faults_injected(self) -> Counter[str]:
        """A snapshot: faults injected so far, by kind (a drop-after-write drawn for a GET is not one)."""
        with self._stats_lock:
            return Counter(self._injected)

    def reset_counts(self) -> None:
        with self._stats_lock:
            self._request_count = 0
            self._requests.clear()
            self._writes.clear()
            self._injected.clear()

    def _count_and_draw(self, request: Request) -> tuple[Faults, Fault]:
        with self._stats_lock:
            self._request_count += 1
            self._requests[(request.method, request.path)] += 1
            fault = draw_fault(self._faults, self._rng) if self._faults.applies_to(request.path) else Fault.NONE
            if fault is not Fault.NONE and not (fault is Fault.DROP_AFTER_WRITE
                                                and request.method not in WRITE_METHODS):
                self._injected[fault.value] += 1
            return self._faults, fault

    # -- one request

    def serve(self, handler: _Handler) -> None:
        request = handler.read_request()
        faults, fault = self._count_and_draw(request)
        if faults.latency > 0:
            time.sleep(faults.latency)
        if fault is Fault.DROP:
            handler.drop()
            return
        if fault is Fault.RATE_LIMIT:
            handler.write_response(
                Response(429, {"error": "rate limited"}, {"Retry-After": str(faults.retry_after)})
            )
            return
        if fault is Fault.UNAVAILABLE:
            handler.write_response(Response(503, {"error": "service unavailable (injected fault)"}))
            return
        if fault is Fault.SLOW:
            time.sleep(faults.slow_seconds)
        if self._hostile_answer(handler, faults, fault):
            return
        response = self._answer(request)
        if request.method in WRITE_METHODS:
            self._log_write(request, response)
        if fault is Fault.DROP_AFTER_WRITE and request.method in WRITE_METHODS:
            handler.drop()
            return
        handler.write_response(response, trickle=faults.trickle_seconds if fault is Fault.TRICKLE else 0.0)

    def _log_write(self, request: Request, response: Response) -> None:
        try:
            body = request.json() if request.body else None
        except BadJsonError:
            body = None
        with self._stats_lock:
            self._writes.append(WriteLogEntry(request.method, request.path, body, response.status))

    @staticmethod
    def _hostile_answer(handler: _Handler, faults: Faults, fault: Fault) -> bool:
        """Answer, instead of the request's own answer (nothing is handled), with a hostile one, if drawn."""
        if fault is Fault.REDIRECT:
            handler.write_response(Response(302, None, {"Location": faults.redirect_to}))
        elif fault is Fault.GZIP_BOMB:
            handler.write_raw(200, gzip_bomb(faults.gzip_bomb_bytes),
                              {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        elif fault is Fault.DEEP_JSON:
            handler.write_raw(200, deep_json(faults.deep_json_depth), {"Content-Type": "application/json"})
        else:
            return False
        return True

    def _answer(self, request: Request) -> Response:
        try:
            refusal = self.authenticate(request)
            if refusal is not None:
                return refusal
            return self.handle(request)
        except HttpError as exc:
            return exc.response
        except Exception as exc:  # a bug in the emulator: answer 500 rather than hang the client
            return Response(500, {"error": f"emulator error: {type(exc).__name__}: {exc}"})

    @abstractmethod
    def authenticate(self, request: Request) -> Response | None:
        """A 401 answer when the credentials are wrong, else None."""

    @abstractmethod
    def handle(self, request: Request) -> Response:
        """The answer to an authenticated request."""


__all__ = [
    "EPOCH",
    "WRITE_METHODS",
    "BadJsonError",
    "EmulatorServer",
    "HttpError",
    "JsonObject",
    "KeysetIndex",
    "ObjectSchema",
    "PropertyRule",
    "Request",
    "Response",
    "WriteClock",
    "WriteLogEntry",
    "format_utc_millis",
    "from_micros",
    "json_type_name",
    "load_schema",
    "parse_aware_datetime",
    "parse_query",
    "to_micros",
]
