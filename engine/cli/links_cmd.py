"""`mapsync links`: list, export, unlink and relink linked records; conflicts and failed records."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mapsync.cli._app import cli
from mapsync.cli._workspace import workspace_from
from mapsync.errors import PlanError
from mapsync.state import open_store
from mapsync.state.base import StateStore
from mapsync.sync import links_admin


def _store(ctx: click.Context, dataflow: str | None = None) -> StateStore:
    workspace = workspace_from(ctx)
    if dataflow and dataflow not in workspace.dataflows:
        raise PlanError(f"unknown dataflow {dataflow!r} (known: {', '.join(workspace.dataflows)})")
    return open_store(workspace.state_url)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v for v in row))
    Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None).print(table)


@cli.group("links")
def links() -> None:
    """Linked records, their conflicts and failed records."""


@links.command("list")
@click.option("--dataflow", help="Only this dataflow.")
@click.option("--state", type=click.Choice(["ok", "conflict"]), help="Only links in this state.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many rows (0: all).")
@click.pass_context
def list_links(ctx: click.Context, dataflow: str | None, state: str | None, limit: int) -> None:
    """List links: dataflow, source id, target id, state, last synced."""
    store = _store(ctx, dataflow)
    try:
        rows: list[list[Any]] = []
        for link in store.iter_links(dataflow, state):
            if limit and len(rows) >= limit:
                break
            rows.append([link.dataflow, link.source_id, link.target_id, link.state, link.updated_at])
        _table("links", ["dataflow", "source id", "target id", "state", "synced at"], rows)
    finally:
        store.close()


@links.command("export")
@click.option("--dataflow", help="Only this dataflow.")
@click.option("--out", type=click.File("w", encoding="utf-8"), default="-", help="File to write (default stdout).")
@click.pass_context
def export_links(ctx: click.Context, dataflow: str | None, out: Any) -> None:
    """Every link as one JSON object per line, with the last-synced values of both sides."""
    store = _store(ctx, dataflow)
    try:
        for link in store.iter_links(dataflow):
            out.write(json.dumps(asdict(link), ensure_ascii=False) + "\n")
    finally:
        store.close()


@links.command("unlink")
@click.argument("dataflow")
@click.argument("source_id")
@click.pass_context
def unlink(ctx: click.Context, dataflow: str, source_id: str) -> None:
    """Forget the link of SOURCE_ID; both records stay as they are."""
    store = _store(ctx, dataflow)
    try:
        link = links_admin.unlink(store, dataflow, source_id)
        click.echo(f"unlinked {dataflow}: {link.source_id} <-> {link.target_id}")
    finally:
        store.close()


@links.command("relink")
@click.argument("dataflow")
@click.argument("source_id")
@click.argument("target_id")
@click.pass_context
def relink(ctx: click.Context, dataflow: str, source_id: str, target_id: str) -> None:
    """Link SOURCE_ID to TARGET_ID (for example to settle an ambiguous match); merged on the next apply."""
    store = _store(ctx, dataflow)
    try:
        links_admin.relink(store, dataflow, source_id, target_id)
        click.echo(f"linked {dataflow}: {source_id} <-> {target_id}; the next apply merges the pair")
    finally:
        store.close()


@links.command("conflicts")
@click.option("--dataflow", help="Only this dataflow.")
@click.pass_context
def conflicts(ctx: click.Context, dataflow: str | None) -> None:
    """Manual conflicts waiting for a person: the value on each side and the last synced one."""
    store = _store(ctx, dataflow)
    try:
        rows = [[c.dataflow, c.source_id, c.target_id, c.prop, c.base, c.source_value, c.target_value]
                for c in store.iter_conflicts(dataflow)]
        _table("conflicts", ["dataflow", "source id", "target id", "property", "last synced", "source", "target"],
               rows)
    finally:
        store.close()


@links.command("resolve")
@click.argument("dataflow")
@click.argument("source_id")
@click.option("--use", type=click.Choice(["source", "target"]), required=True, help="The side whose value wins.")
@click.option("--property", "prop", help="Only this property (default: every conflict of the pair).")
@click.pass_context
def resolve(ctx: click.Context, dataflow: str, source_id: str, use: str, prop: str | None) -> None:
    """Settle a manual conflict; the winning value is written on the next apply."""
    store = _store(ctx, dataflow)
    try:
        settled = links_admin.resolve(store, dataflow, source_id, use, prop)
        click.echo(f"{settled} conflict{'s' if settled != 1 else ''} of {dataflow} {source_id} settled for the "
                   f"{use}; run apply to write it")
    finally:
        store.close()


@links.command("failed")
@click.option("--dataflow", help="Only this dataflow.")
@click.pass_context
def failed(ctx: click.Context, dataflow: str | None) -> None:
    """The dead-letter ledger: records that failed or wait, with the reason; retried on every apply."""
    store = _store(ctx, dataflow)
    try:
        rows = [[d.dataflow, d.record_id, d.status if d.status is not None else "", d.attempts, d.reason,
                 d.last_failed_at] for d in store.iter_dead_letters(dataflow)]
        _table("failed records", ["dataflow", "record", "status", "attempts", "reason", "last try"], rows)
    finally:
        store.close()
