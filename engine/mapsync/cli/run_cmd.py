"""`mapsync run`: the long-running worker (the schedule is the `run:` section of mapsync.yaml), or, with
--once, each dataflow once (what a CronJob calls)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from mapsync.cli._app import EXIT_FAILED, cli
from mapsync.cli._render import print_summary
from mapsync.cli._workspace import workspace_from
from mapsync.observe.metrics import Metrics
from mapsync.spec.model import Workspace
from mapsync.sync.report import Report
from mapsync.worker.endpoint import readiness, serve
from mapsync.worker.loop import RunOutcome, RunResult, Worker
from mapsync.worker.schedule import SettingError, parse_duration, parse_listen

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    try:
        return None if value is None else parse_duration(value)
    except SettingError as exc:
        raise click.BadParameter(str(exc)) from None


def _listen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_listen(value)
    except SettingError as exc:
        raise click.BadParameter(str(exc)) from None
    return value.strip()


@cli.command("run")
@click.option("--every", metavar="DURATION", callback=_duration,
              help="Sync every dataflow this often (30s, 5m, 1h), over `every` and `dataflows:` of the run: section.")
@click.option("--listen", metavar="HOST:PORT", callback=_listen,
              help="Serve /healthz, /readyz, /metrics and POST /trigger/DATAFLOW here, over run: listen.")
@click.option("--once", is_flag=True, help="Sync each dataflow once, in dependency order, and exit: 0 when all "
                                           "synced, 1 when any failed (a dataflow another worker holds is skipped).")
@click.option("--json-report", type=click.Path(dir_okay=False, path_type=Path),
              help="With --once: write the JSON report (all dataflows) to this file.")
@click.pass_context
def run(ctx: click.Context, every: float | None, listen: str | None, once: bool, json_report: Path | None) -> None:
    """Sync each dataflow on a schedule until SIGTERM or SIGINT (then the run in progress stops at its next
    batch, its locks are released, and the exit status is 0; a second signal ends at once). Several workers
    on one PostgreSQL state share the dataflows without configuration."""
    if json_report is not None and not once:
        raise click.BadParameter("goes with --once (a worker's runs are in /metrics and the logs)",
                                 param_hint="--json-report")
    workspace = workspace_from(ctx)
    address = listen or workspace.run.listen
    metrics = Metrics() if address else None
    worker = Worker(workspace, every=every, on_report=None if metrics is None else metrics.observe_report)
    with _stop_on_signals(worker.stop), _endpoint(address, worker, workspace, metrics):
        if not once:
            _greet(worker, address)
            worker.run_forever()
            return
        results = worker.run_once()
    report = _merged(results)
    if json_report is not None:
        report.write(json_report)
    print_summary(report)
    for result in results:
        if result.outcome is RunOutcome.TAKEN:
            click.echo(f"{result.dataflow}: skipped: another worker is syncing it", err=True)
    if any(r.outcome in {RunOutcome.FAILED, RunOutcome.PARTIAL} for r in results):
        ctx.exit(EXIT_FAILED)


def _merged(results: list[RunResult]) -> Report:
    """One report of every dataflow run with --once (those another worker held are left out)."""
    merged = Report(started_at=results[0].report.started_at) if results else Report()
    for result in results:
        if result.outcome is RunOutcome.TAKEN:
            continue
        merged.dataflows.update(result.report.dataflows)
        merged.errors.extend(result.report.errors)
        for connection, counts in result.report.requests.items():
            into = merged.requests.setdefault(connection, {})
            for method, n in counts.items():
                into[method] = into.get(method, 0) + n
    merged.finished_at = datetime.now(UTC)
    return merged


@contextmanager
def _endpoint(address: str | None, worker: Worker, workspace: Workspace, metrics: Metrics | None) -> Iterator[None]:
    if address is None or metrics is None:
        yield
        return
    endpoint = serve(address, metrics=metrics, ready=readiness(workspace), trigger=worker.trigger,
                     dataflows=list(workspace.dataflows), token=workspace.run.trigger_token)
    try:
        yield
    finally:
        endpoint.close()


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """The first SIGTERM or SIGINT stops the worker cleanly; a second one ends the process at once (the
    default handlers are back: SIGINT interrupts, SIGTERM terminates; the state store frees the locks of a
    process that is gone)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, previous[sig])
        stop()  # only sets flags: safe in a signal handler

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _greet(worker: Worker, address: str | None) -> None:
    """One line for a person at a terminal (the logs say the rest, in their own format)."""
    if not sys.stderr.isatty():
        return
    every = sorted({worker.schedule.interval(name) for name in worker.schedule.names})
    where = f"; serving on {address}" if address else ""
    click.echo(f"mapsync run: {len(worker.schedule.names)} dataflows every "
               f"{' / '.join(f'{s:g}s' for s in every)}{where}; stop with Ctrl-C", err=True)
