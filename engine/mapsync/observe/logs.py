"""Structured logs on the standard library's `logging`: one event per line, text or JSON.

Every event is a log record whose message is the event's name (`run.start`, `record.write`, ...) and whose
fields travel as the record's extra attributes, so any handler sees them: the JSON formatter
(python-json-logger) writes them as the keys of one object per line, the text formatter as `key=value`.

Library code only logs, to the `mapsync.*` loggers (with a NullHandler, so nothing is printed unless asked);
the CLI calls `configure()` once per command, which puts one handler on stderr.

The run's id and the dataflow being synced are bound with `bound()` by the runner and added to every event
logged inside it, also from the executor's worker threads (a request retried while writing): a thread
with no binding of its own takes the binding of the one thread that has one (runs in one process follow
each other; were two bound at once, the fields are left out rather than guessed).

Secrets: no header is ever logged; a request's path and query pass through `mapsync.redact` and the
connection's own masking; reasons and errors through `redact_text`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from mapsync.redact import redact_text, redact_url

if TYPE_CHECKING:
    from mapsync.sync.executor import Outcome
    from mapsync.sync.report import Report

ROOT = "mapsync"
RUN_LOG = logging.getLogger("mapsync.run")
RECORD_LOG = logging.getLogger("mapsync.records")
HTTP_LOG = logging.getLogger("mapsync.http")
REQUEST_LOG = logging.getLogger("mapsync.http.requests")  # on only with -v (see configure)

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")
# A person at a terminal sees warnings (failed records, failed runs); a machine reading JSON sees every write.
DEFAULT_LEVEL = {"text": "warning", "json": "info"}
# The outcomes that changed something (ActionKind values; strings, as the connectors import this module).
WRITE_KINDS = frozenset({"create", "update", "delete", "link", "relink", "unlink"})
MAX_ERRORS_LOGGED = 10

logging.getLogger(ROOT).addHandler(logging.NullHandler())  # a library prints nothing unless configured

# -- run id and dataflow, bound per thread -------------------------------------------------------------

_BOUND: ContextVar[Mapping[str, str] | None] = ContextVar("mapsync_log_fields", default=None)
_BY_THREAD: dict[int, Mapping[str, str]] = {}
_BY_THREAD_LOCK = threading.Lock()


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Add `fields` (run_id, dataflow) to every event logged inside the block."""
    merged = {**(_BOUND.get() or {}), **fields}
    token = _BOUND.set(merged)
    thread = threading.get_ident()
    with _BY_THREAD_LOCK:
        before = _BY_THREAD.get(thread)
        _BY_THREAD[thread] = merged
    try:
        yield
    finally:
        _BOUND.reset(token)
        with _BY_THREAD_LOCK:
            if before is None:
                _BY_THREAD.pop(thread, None)
            else:
                _BY_THREAD[thread] = before


def bound_fields() -> Mapping[str, str]:
    """This thread's bound fields, or (a worker thread) those of the one thread that has any."""
    own = _BOUND.get()
    if own is not None:
        return own
    with _BY_THREAD_LOCK:
        bindings = list(_BY_THREAD.values())
    return bindings[0] if len(bindings) == 1 else {}


def _emit(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    if not logger.isEnabledFor(level):
        return
    present = {key: value for key, value in fields.items() if value is not None}
    logger.log(level, event, extra={"event": event, **bound_fields(), **present})


# -- runs --------------------------------------------------------------------------------------------


@contextmanager
def run_logged(report: Report, dataflows: list[str]) -> Iterator[None]:
    """`run.start` and `run.end` around a whole run, with the run's id bound inside."""
    with bound(run_id=report.run_id):
        _emit(RUN_LOG, logging.INFO, "run.start", dataflows=dataflows)
        try:
            yield
        finally:
            ok = report.succeeded
            _emit(RUN_LOG, logging.INFO if ok else logging.WARNING, "run.end", status=report.status,
                  counts=asdict(report.total), duration_ms=_ms(report.duration),
                  errors=_errors(report.errors) or None)


@contextmanager
def dataflow_logged(report: Report, dataflow: str) -> Iterator[None]:
    """`run.start` and `run.end` of one dataflow of a run, with the dataflow bound inside."""
    started = time.monotonic()
    with bound(run_id=report.run_id, dataflow=dataflow):
        _emit(RUN_LOG, logging.INFO, "run.start")
        try:
            yield
        finally:
            result = report.dataflow(dataflow)
            ok = result.status in ("ok", "conflicts")
            _emit(RUN_LOG, logging.INFO if ok else logging.WARNING, "run.end", status=result.status,
                  counts=asdict(result.counts), duration_ms=_ms(time.monotonic() - started),
                  conflicts_waiting=result.conflicts_waiting, errors=_errors(result.errors) or None)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _errors(lines: list[str]) -> list[str]:
    return [redact_text(line) for line in lines[:MAX_ERRORS_LOGGED]]


# -- records -----------------------------------------------------------------------------------------


def record_outcome(outcome: Outcome, *, failed: bool) -> None:
    """`record.write` for each side a finished action wrote, `record.failed` for a failed record."""
    if failed:
        _record_failed(outcome)
    elif outcome.kind in WRITE_KINDS and RECORD_LOG.isEnabledFor(logging.INFO):  # else nothing to build
        _record_written(outcome)


def _record_written(outcome: Outcome) -> None:
    action = outcome.action
    target_id = outcome.created.target_id if outcome.created else action.target_id
    ids = {"kind": str(outcome.kind), "source_id": outcome.source_id, "target_id": target_id}
    with_values = RECORD_LOG.isEnabledFor(logging.DEBUG)
    sides = [(side, changes) for side, changes in (("target", action.target_changes),
                                                   ("source", action.source_changes)) if changes]
    if not sides:  # a delete, or a link kept in the state store only
        side = action.side if outcome.kind in ("create", "delete") else "state"
        _emit(RECORD_LOG, logging.INFO, "record.write", **ids, side=side, changed=[])
    for side, changes in sides:
        values = {name: {"old": old, "new": new} for name, (old, new) in changes.items()} if with_values else None
        _emit(RECORD_LOG, logging.INFO, "record.write", **ids, side=side, changed=sorted(changes), values=values,
              conflicts=[c.prop for c in action.conflicts] or None)


def _record_failed(outcome: Outcome) -> None:
    action = outcome.action
    status = getattr(outcome.error, "status", None) or action.status
    _emit(RECORD_LOG, logging.WARNING, "record.failed", kind=str(outcome.kind), side=action.side,
          source_id=outcome.source_id, target_id=action.target_id, status=status,
          reason=redact_text(outcome.reason))


# -- HTTP --------------------------------------------------------------------------------------------


def request_target(path: str, params: Mapping[str, str | int] | None) -> str:
    """The path and query of a request as it may be logged: every secret query parameter masked."""
    query = urlencode(params) if params else ""
    target = f"{path}{'&' if '?' in path else '?'}{query}" if query else path
    return redact_url(target)


def http_retry(connection: str, method: str, path: str, *, attempt: int, delay: float,
               mask: Callable[[str], str], status: int | None = None, error: BaseException | None = None) -> None:
    """One `http.retry`: attempt `attempt` failed (a status or no answer) and the next follows in `delay` s."""
    _emit(HTTP_LOG, logging.INFO, "http.retry", connection=connection, method=method,
          path=mask(request_target(path, None)), status=status,
          error=None if error is None else mask(redact_text(f"{type(error).__name__}: {error}")),
          attempt=attempt, delay_ms=_ms(delay))


def http_request(connection: str, method: str, path: str, params: Mapping[str, str | int] | None, *,
                 started: float, answered: str, mask: Callable[[str], str]) -> None:
    """One `http.request` (-v only): method, path and query (secrets masked), status (or, with no answer,
    `error`: a word such as timeout), time in ms."""
    if not REQUEST_LOG.isEnabledFor(logging.INFO):
        return
    status, error = (int(answered), None) if answered.isdigit() else (None, answered)
    _emit(REQUEST_LOG, logging.INFO, "http.request", connection=connection, method=method,
          path=mask(request_target(path, params)), status=status, error=error,
          duration_ms=_ms(time.monotonic() - started))


# -- the handler the CLI installs -------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is logged (click's test runner swaps it per command)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class TextFormatter(logging.Formatter):
    """`2025-01-31T10:00:00.123+00:00 info record.write run_id=... dataflow=... key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in vars(record).items() if key not in _NOT_FIELDS}
        event = fields.pop("event", record.getMessage())
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return " ".join([when, record.levelname.lower(), str(event),
                         *(f"{key}={_text_value(value)}" for key, value in fields.items())])


_NOT_FIELDS = frozenset(RESERVED_ATTRS) | {"taskName"}


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def json_formatter() -> logging.Formatter:
    """One JSON object per line: level, logger, event, the event's fields, timestamp (UTC, ISO 8601)."""
    return JsonFormatter(["levelname", "name"], rename_fields={"levelname": "level", "name": "logger"},
                         timestamp=True, json_ensure_ascii=False)


_installed: logging.Handler | None = None


def configure(fmt: str = "text", level: str | None = None, *, verbose: bool = False) -> None:
    """Log mapsync's events to stderr in `fmt` at `level` (default: DEFAULT_LEVEL of the format; info with
    -v); `verbose` adds one `http.request` line per request. Replaces an earlier configure()."""
    unconfigure()
    chosen = level or ("info" if verbose else DEFAULT_LEVEL[fmt])
    handler = _StderrHandler()
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger(ROOT)
    root.addHandler(handler)
    root.setLevel(LEVELS[chosen])
    root.propagate = False  # the CLI's lines go to its handler once, whatever the root logger holds
    REQUEST_LOG.setLevel(logging.NOTSET if verbose else logging.CRITICAL + 1)
    global _installed  # noqa: PLW0603 -- one handler per process, replaced by the next configure()
    _installed = handler


def unconfigure() -> None:
    """Take configure()'s handler off again and put the loggers back as a library leaves them."""
    global _installed  # noqa: PLW0603
    root = logging.getLogger(ROOT)
    if _installed is not None:
        root.removeHandler(_installed)
        _installed = None
    root.setLevel(logging.NOTSET)
    root.propagate = True
    REQUEST_LOG.setLevel(logging.NOTSET)


__all__ = [
    "DEFAULT_LEVEL",
    "FORMATS",
    "LEVELS",
    "TextFormatter",
    "bound",
    "bound_fields",
    "configure",
    "dataflow_logged",
    "http_request",
    "http_retry",
    "json_formatter",
    "record_outcome",
    "request_target",
    "run_logged",
    "unconfigure",
]
