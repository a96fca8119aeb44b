"""`mapsync history DATAFLOW:ID`: every write mapsync made to a record, newest first, and why."""

from __future__ import annotations

import json
from typing import Any

import click

from mapsync.cli._app import cli
from mapsync.cli._render import show
from mapsync.cli._workspace import workspace_from
from mapsync.spec.model import Workspace
from mapsync.state import open_store
from mapsync.state.base import HistoryEntry


def parse_record(workspace: Workspace, value: str) -> tuple[str, str]:
    """DATAFLOW:ID as (dataflow, id); a malformed value or an unknown dataflow is a usage error (exit 2)."""
    dataflow, colon, record_id = (part.strip() for part in value.partition(":"))
    if not (colon and dataflow and record_id):
        raise click.BadParameter(f"expected DATAFLOW:ID (e.g. kunde-customer:K10001), got {value!r}",
                                 param_hint="DATAFLOW:ID")
    if dataflow not in workspace.dataflows:
        raise click.BadParameter(f"unknown dataflow {dataflow!r} (known: {', '.join(workspace.dataflows)})",
                                 param_hint="DATAFLOW:ID")
    return dataflow, record_id


record_argument = click.argument("record", metavar="DATAFLOW:ID")
side_option = click.option("--side", type=click.Choice(["source", "target"]), default="source", show_default=True,
                           help="Whose id ID is: the source record's, or the target record's.")


def entry_json(entry: HistoryEntry) -> dict[str, Any]:
    """An entry as `--json` gives it (stable keys: scripts read them)."""
    return {"id": entry.id, "at": entry.at, "run_id": entry.run_id, "dataflow": entry.dataflow, "kind": entry.kind,
            "side": entry.side, "source_id": entry.source_id, "target_id": entry.target_id, "why": entry.why,
            "changes": entry.changes}


def entry_lines(entry: HistoryEntry) -> list[str]:
    """An entry for people: when, which run, what was written where and why, then each property."""
    where = "mapsync's record of the pair" if entry.side == "state" else f"the {entry.side}"
    lines = [f"{entry.at}  {entry.kind} ({where})  {entry.source_id} <-> {entry.target_id}  run {entry.run_id}",
             f"    why: {entry.why}"]
    lines.extend(f"    {prop}: {_change_text(change)}" for prop, change in entry.changes.items())
    return lines


def _change_text(change: Any) -> str:
    if not isinstance(change, dict):
        return show(change)
    if "old" in change or "new" in change:
        text = f"{show(change.get('old'))} -> {show(change.get('new'))}"
    else:  # a conflict: the value of each side (and the last synced one)
        text = f"source {show(change.get('source'))}, target {show(change.get('target'))} " \
               f"(was {show(change.get('base'))})"
    if "lost" in change:
        text += f"  [lost: {show(change['lost'])}; {change.get('winner', '?')} won]"
    return text


@cli.command("history")
@record_argument
@side_option
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="At most this many entries, the newest (0: all).")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of entries, newest first.")
@click.pass_context
def history(ctx: click.Context, record: str, side: str, limit: int, as_json: bool) -> None:
    """Every write mapsync made to a record, newest first: when, which run, the side written, each property's
    old and new value, and why (a change on the other side, a conflict settled by the policy with the losing
    value, a create, a delete, a link, an operator's resolve)."""
    workspace = workspace_from(ctx)
    dataflow, record_id = parse_record(workspace, record)
    store = open_store(workspace.state_url)
    try:
        entries = store.history_of(dataflow, record_id, side=side, limit=limit or None)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([entry_json(e) for e in entries], ensure_ascii=False, indent=2))
        return
    if not entries:
        click.echo(f"{dataflow} {side} {record_id}: no writes recorded (kept for "
                   f"{workspace.history_keep_days} days)")
        return
    click.echo(f"{dataflow} {side} {record_id}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
               "newest first")
    for entry in entries:
        for line in entry_lines(entry):
            click.echo(line)
