"""`mapsync links`: list, export, unlink and relink linked records; conflicts and failed records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from mapsync.cli._render import print_listing
from mapsync.cli._workspace import workspace_from
from mapsync.errors import PlanError
from mapsync.spec.model import Workspace
from mapsync.state import open_store
from mapsync.state.base import StateStore
from mapsync.sync import links_admin
from mapsync.sync.report import conflict_row
from mapsync.sync.runner import SyncRun


def _open(ctx: click.Context, dataflow: str | None = None) -> tuple[Workspace, StateStore]:
    workspace = workspace_from(ctx)
    if dataflow and dataflow not in workspace.dataflows:
        raise PlanError(f"unknown dataflow {dataflow!r} (known: {', '.join(workspace.dataflows)})")
    return workspace, open_store(workspace.state_url)


@contextmanager
def _store(ctx: click.Context, dataflow: str | None = None) -> Iterator[StateStore]:
    """The workspace's state store, closed when the command is done with it."""
    store = _open(ctx, dataflow)[1]
    try:
        yield store
    finally:
        store.close()


json_option = click.option("--json", "as_json", is_flag=True,
                           help="A JSON array of objects on stdout (keys as the table's columns).")


@click.group("links")
def links() -> None:
    """Linked records, their conflicts and failed records."""


@links.command("list")
@click.option("--dataflow", help="Only this dataflow.")
@click.option("--state", type=click.Choice(["ok", "conflict"]), help="Only links in this state.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many rows (0: all).")
@json_option
@click.pass_context
def list_links(ctx: click.Context, dataflow: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """List links: dataflow, source id, target id, state, last synced."""
    with _store(ctx, dataflow) as store:
        rows: list[dict[str, Any]] = []
        for link in store.iter_links(dataflow, state):
            if limit and len(rows) >= limit:
                break
            rows.append({"dataflow": link.dataflow, "source_id": link.source_id, "target_id": link.target_id,
                         "state": link.state, "synced_at": link.updated_at})
        print_listing("links", LINK_KEYS, rows, as_json=as_json)


@links.command("export")
@click.option("--dataflow", help="Only this dataflow.")
@click.option("--out", type=click.File("w", encoding="utf-8"), default="-", help="File to write (default stdout).")
@click.pass_context
def export_links(ctx: click.Context, dataflow: str | None, out: Any) -> None:
    """Every link as one JSON object per line, with the last-synced values of both sides."""
    with _store(ctx, dataflow) as store:
        for link in store.iter_links(dataflow):
            out.write(json.dumps(asdict(link), ensure_ascii=False) + "\n")


@links.command("unlink")
@click.argument("dataflow")
@click.argument("source_id")
@click.pass_context
def unlink(ctx: click.Context, dataflow: str, source_id: str) -> None:
    """Forget the link of SOURCE_ID; both records stay as they are."""
    with _store(ctx, dataflow) as store:
        link = links_admin.unlink(store, dataflow, source_id)
        click.echo(f"unlinked {dataflow}: {link.source_id} <-> {link.target_id}")


@links.command("relink")
@click.argument("dataflow")
@click.argument("source_id")
@click.argument("target_id")
@click.pass_context
def relink(ctx: click.Context, dataflow: str, source_id: str, target_id: str) -> None:
    """Link SOURCE_ID to TARGET_ID (for example to settle an ambiguous match); merged on the next apply.

    Both records are read first: each must exist, the target must be one of this dataflow's (its constants,
    such as kind) and linked in no other dataflow; otherwise nothing changes and the exit status is 1."""
    workspace, store = _open(ctx, dataflow)
    try:
        with SyncRun(workspace, dataflows=[dataflow], store=store) as run:
            links_admin.relink(run.link_rules(dataflow), source_id, target_id)
        click.echo(f"linked {dataflow}: {source_id} <-> {target_id}; the next apply merges the pair")
    finally:
        store.close()


@links.command("conflicts")
@click.option("--dataflow", help="Only this dataflow.")
@json_option
@click.pass_context
def conflicts(ctx: click.Context, dataflow: str | None, as_json: bool) -> None:
    """Manual conflicts waiting for a person: the value on each side, the last synced one, and since when."""
    with _store(ctx, dataflow) as store:
        print_listing("conflicts", CONFLICT_KEYS, map(conflict_row, store.iter_conflicts(dataflow)), as_json=as_json)


@links.command("resolve")
@click.argument("dataflow")
@click.argument("source_id")
@click.option("--use", type=click.Choice(["source", "target"]), required=True, help="The side whose value wins.")
@click.option("--property", "prop", help="Only this property (default: every conflict of the pair).")
@click.pass_context
def resolve(ctx: click.Context, dataflow: str, source_id: str, use: str, prop: str | None) -> None:
    """Settle a manual conflict; the winning value is written on the next apply."""
    with _store(ctx, dataflow) as store:
        settled = links_admin.resolve(store, dataflow, source_id, use, prop)
        click.echo(f"{settled} conflict{'s' if settled != 1 else ''} of {dataflow} {source_id} settled for the "
                   f"{use}; run apply to write it")


@links.command("failed")
@click.option("--dataflow", help="Only this dataflow.")
@json_option
@click.pass_context
def failed(ctx: click.Context, dataflow: str | None, as_json: bool) -> None:
    """The dead-letter ledger: records that failed or wait, with the reason; retried on every apply."""
    with _store(ctx, dataflow) as store:
        rows = ({"dataflow": d.dataflow, "side": d.side, "record_id": d.record_id, "status": d.status,
                 "attempts": d.attempts, "reason": d.reason, "first_failed_at": d.first_failed_at,
                 "last_failed_at": d.last_failed_at} for d in store.iter_dead_letters(dataflow))
        print_listing("failed records", FAILED_KEYS, rows, as_json=as_json)


@links.command("retry")
@click.argument("dataflow")
@click.argument("record_id")
@click.pass_context
def retry(ctx: click.Context, dataflow: str, record_id: str) -> None:
    """Retry a failed record now (RECORD_ID: either side's id): both records read again and synced, as
    `apply --id` would, under the dataflow's lock; it leaves the ledger when it goes through."""
    workspace, store = _open(ctx, dataflow)
    try:
        letter = links_admin.failed_letter(store, dataflow, record_id)
        with SyncRun(workspace, dataflows=[dataflow], store=store, only_ids={dataflow: [letter.record_id]}) as run:
            report = run.apply()
        if report.errors:  # the run could not start (another apply holds the lock): nothing was tried
            raise PlanError(f"{dataflow}: not retried: {report.errors[0]}")
        try:
            still = links_admin.failed_letter(store, dataflow, letter.record_id)
        except PlanError:
            click.echo(f"retried {dataflow} {record_id}: synced, and out of the failed records")
            return
        raise PlanError(f"{dataflow}: {record_id!r} failed again: {still.reason}")
    finally:
        store.close()


@links.command("dismiss")
@click.argument("dataflow")
@click.argument("record_id")
@click.pass_context
def dismiss(ctx: click.Context, dataflow: str, record_id: str) -> None:
    """Take a failed record (RECORD_ID: either side's id) out of the ledger; it is left as it is, and no
    apply retries it until it changes again (or `apply --full` reads it)."""
    with _store(ctx, dataflow) as store:
        letter = links_admin.dismiss(store, dataflow, record_id)
        click.echo(f"dismissed {dataflow} {letter.record_id}: {letter.reason}")


# The keys of each listing's rows, also the --json objects' keys.
LINK_KEYS = ("dataflow", "source_id", "target_id", "state", "synced_at")
CONFLICT_KEYS = ("dataflow", "source_id", "target_id", "property", "base", "source_value", "target_value", "since")
FAILED_KEYS = ("dataflow", "side", "record_id", "status", "attempts", "reason", "first_failed_at", "last_failed_at")
