"""Prometheus metrics of sync runs, for the worker's `/metrics` and `apply --push-metrics`.

One `Metrics` owns its own registry (never prometheus_client's global one), so two workers in one process,
or the tests, never see each other's numbers. The runner's `Report` is the only input: whatever a run
counted for its JSON report is what the metrics say, so the two can never disagree.
"""

from __future__ import annotations

import functools
import http.client
import urllib.error
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, basic_auth_handler, default_handler, push_to_gateway

from mapsync.errors import MapsyncError
from mapsync.redact import redact_text, redact_url
from mapsync.state.base import StateStore
from mapsync.sync.report import SUCCEEDED, DataflowReport, Report

# The record outcomes of a report's counts, each a value of the `outcome` label (`stale`: apply --plan).
RECORD_OUTCOMES = ("created", "updated", "deleted", "unchanged", "failed", "deferred", "linked", "unlinked",
                   "conflicts", "stale")
# A dataflow's run takes from under a second (nothing changed) to an hour (an initial sync).
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
PUSH_TIMEOUT = 10.0  # seconds: a gateway that does not answer must not hold a CronJob for long
# A connection whose connector does not count answers by status: its requests carry this status label.
UNKNOWN_STATUS = "unknown"

RequestCounts = Mapping[str, Mapping[str, Mapping[str, int]]]  # connection -> method -> status -> requests


class MetricsPushError(MapsyncError):
    """The Pushgateway could not be reached or refused the metrics."""


class Metrics:
    """The metrics of every run observed so far, rendered in Prometheus' text format or pushed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._runs = Counter("mapsync_runs", "Dataflow runs, by how they ended: ok, conflicts, partial, failed.",
                             ["dataflow", "status"], registry=registry)
        self._records = Counter("mapsync_records", "Records by what a run did with them (conflicts: conflicts "
                                "detected).", ["dataflow", "outcome"], registry=registry)
        self._requests = Counter("mapsync_requests", "HTTP requests to a connection, by method and answer status "
                                 "(error or timeout: no answer).", ["connection", "method", "status"],
                                 registry=registry)
        self._duration = Histogram("mapsync_run_duration_seconds", "Seconds one run of a dataflow took.",
                                   ["dataflow"], buckets=DURATION_BUCKETS, registry=registry)
        self._last_success = Gauge("mapsync_last_success_timestamp_seconds", "When a run of the dataflow last "
                                   "ended with everything synced (status ok or conflicts), Unix time.",
                                   ["dataflow"], registry=registry)
        self._failed = Gauge("mapsync_failed_records", "Records of the dataflow in the dead-letter ledger now.",
                             ["dataflow"], registry=registry)
        self._conflicts = Gauge("mapsync_conflicts_waiting", "Manual conflicts of the dataflow waiting for a "
                                "person.", ["dataflow"], registry=registry)

    def observe_report(self, report: Report, store: StateStore | None = None, *,
                       expected: Collection[str] = ()) -> None:
        """Count one finished run, its requests included (so never call observe_requests for it as well).

        `store`: where the dead-letter ledger is read for `mapsync_failed_records` (else the run's failed
        count stands for it). `expected`: the dataflows the run was meant to sync; one the report does not
        mention, in a run that failed as a whole (a lock held elsewhere), is counted as a failed run.
        """
        finished = (report.finished_at or datetime.now(UTC)).timestamp()
        for flow in report.dataflows.values():
            self._observe_dataflow(flow, finished, store)
        if report.errors:
            for name in sorted(set(expected) - set(report.dataflows)):
                self._runs.labels(name, "failed").inc()
        self.observe_requests(requests_of(report))

    def _observe_dataflow(self, flow: DataflowReport, finished: float, store: StateStore | None) -> None:
        name = flow.name
        self._runs.labels(name, flow.status).inc()
        for outcome in RECORD_OUTCOMES:
            self._records.labels(name, outcome).inc(getattr(flow.counts, outcome))  # 0 too: the series exists
        self._duration.labels(name).observe(flow.duration)
        if flow.status in SUCCEEDED:
            self._last_success.labels(name).set(finished)
        self._failed.labels(name).set(_dead_letters(store, flow))
        self._conflicts.labels(name).set(flow.conflicts_waiting)

    def observe_requests(self, requests: RequestCounts) -> None:
        """Add requests made since the last call: per connection, method and status (`"200"`, `"error"`)."""
        for connection, methods in requests.items():
            for method, statuses in methods.items():
                for status, count in statuses.items():
                    self._requests.labels(connection, method, status).inc(count)

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def push(self, gateway_url: str, job: str = "mapsync") -> None:
        """Push every metric to a Prometheus Pushgateway (replacing what `job` pushed before).

        A user and password in the URL (`https://user:pass@gateway`) are sent as basic authentication.
        """
        url, handler = _gateway_and_handler(gateway_url)
        try:
            push_to_gateway(url, job=job, registry=self.registry, timeout=PUSH_TIMEOUT, handler=handler)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = redact_text(_push_failure(exc), gateway_url)
            raise MetricsPushError(f"cannot push metrics to {redact_url(gateway_url)}: {reason}") from None


def _push_failure(exc: Exception) -> str:
    """Why a push failed, in one line: the gateway's answer (with the start of its text) or no answer."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            text = " ".join(exc.read(300).decode("utf-8", "replace").split())
        except (OSError, http.client.HTTPException):
            text = ""
        return f"the gateway answered {exc.code} {exc.reason}" + (f": {text}" if text else "")
    if isinstance(exc, urllib.error.URLError):
        return f"no answer ({exc.reason})"
    return " ".join(str(exc).split()) or type(exc).__name__


def requests_of(report: Report) -> dict[str, dict[str, dict[str, int]]]:
    """A run's requests per connection, method and status; a connection counted only per method (a
    connector not on the shared HTTP layer) has its requests under status `unknown`."""
    counted: dict[str, dict[str, dict[str, int]]] = {name: {m: dict(s) for m, s in methods.items()}
                                                     for name, methods in report.request_statuses.items()}
    for name, methods in report.requests.items():
        if name not in counted:
            counted[name] = {method: {UNKNOWN_STATUS: n} for method, n in methods.items()}
    return counted


def _dead_letters(store: StateStore | None, flow: DataflowReport) -> int:
    if store is None:
        return flow.counts.failed
    try:
        return sum(1 for _ in store.iter_dead_letters(flow.name))
    except MapsyncError:
        return flow.counts.failed  # the store failed after the run: the run's own count is the best known


_PushHandler = Callable[..., Callable[[], None]]


def _gateway_and_handler(gateway_url: str) -> tuple[str, _PushHandler]:
    """The gateway URL without its userinfo, and the handler that sends that userinfo as basic auth."""
    text = gateway_url if "://" in gateway_url else f"http://{gateway_url}"
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise MetricsPushError(f"cannot push metrics to {redact_url(gateway_url)}: not a URL: "
                               f"{redact_text(str(exc), gateway_url)}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise MetricsPushError(f"cannot push metrics to {redact_url(gateway_url)}: expected http(s)://HOST[:PORT]")
    if parts.username is None:
        return text, default_handler
    netloc = f"[{host}]" if ":" in host else host
    netloc += "" if port is None else f":{port}"
    handler = functools.partial(basic_auth_handler, username=unquote(parts.username),
                                password=unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=netloc)), handler


__all__ = ["DURATION_BUCKETS", "PUSH_TIMEOUT", "RECORD_OUTCOMES", "UNKNOWN_STATUS", "Metrics", "MetricsPushError",
           "RequestCounts", "requests_of"]
