"""`mapsync explain DATAFLOW:ID`: a pair's link, its last-synced values, both sides' current values (read
live), what the next run would do and why (planned as `mapsync plan --id` plans it), its waiting conflicts,
its failed-record entry and its latest history."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from mapsync.cli._app import cli
from mapsync.cli._render import action_lines, show
from mapsync.cli._workspace import workspace_from
from mapsync.cli.history_cmd import entry_json, entry_lines, parse_record, record_argument, side_option
from mapsync.errors import MapsyncError
from mapsync.spec.model import DataflowSpec
from mapsync.state.base import Conflict, DeadLetter, HistoryEntry, Link
from mapsync.sync.actions import Action
from mapsync.sync.lookup import StoreLinks
from mapsync.sync.report import conflict_row
from mapsync.sync.runner import SyncRun

RECENT_HISTORY = 5


@dataclass
class LiveSide:
    """One side's record as read now: its canonical values, or why there are none."""

    record_id: str | None
    values: dict[str, Any] | None = None
    problem: str = ""  # not found, unreadable, or not mappable

    def to_json(self) -> dict[str, Any]:
        return {"id": self.record_id, "values": self.values, "problem": self.problem or None}


@dataclass
class Explanation:
    spec: DataflowSpec
    link: Link | None
    source: LiveSide
    target: LiveSide
    next_run: list[Action] = field(default_factory=list)
    plan_error: str = ""
    conflicts: list[Conflict] = field(default_factory=list)
    failed: list[DeadLetter] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)

    def properties(self) -> list[dict[str, Any]]:
        """Per property: the last-synced and current values of both sides, and which side changed it."""
        last_s = self.link.source_values if self.link else {}
        last_t = self.link.target_values if self.link else {}
        now_s, now_t = self.source.values or {}, self.target.values or {}
        rows = []
        for prop in (row.target for row in self.spec.rows):
            row = {"property": prop, "synced_source": last_s.get(prop), "synced_target": last_t.get(prop),
                   "source": now_s.get(prop), "target": now_t.get(prop)}
            row["state"] = _property_state(self, prop, row)
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        link = self.link
        return {
            "dataflow": self.spec.name,
            "link": None if link is None else {"source_id": link.source_id, "target_id": link.target_id,
                                               "state": link.state, "synced_at": link.updated_at,
                                               "source_version": link.source_version,
                                               "target_version": link.target_version},
            "source": self.source.to_json(),
            "target": self.target.to_json(),
            "properties": self.properties(),
            "next_run": [action.to_json() for action in self.next_run],
            "plan_error": self.plan_error or None,
            "conflicts_waiting": [conflict_row(c) for c in self.conflicts],
            "failed": [{"side": d.side, "record_id": d.record_id, "status": d.status, "attempts": d.attempts,
                        "reason": d.reason, "first_failed_at": d.first_failed_at,
                        "last_failed_at": d.last_failed_at} for d in self.failed],
            "history": [entry_json(e) for e in self.history],
        }


def _property_state(found: Explanation, prop: str, row: dict[str, Any]) -> str:
    if found.source.values is None or found.target.values is None:
        return "unknown" if found.link else "not linked"
    if row["source"] == row["target"]:
        return "in sync"
    if found.link is None or not found.link.source_values:
        return "differs (never synced: settled by the policy)"
    s_changed, t_changed = row["source"] != row["synced_source"], row["target"] != row["synced_target"]
    if s_changed and t_changed:
        return "changed on both sides: a conflict"
    if s_changed:
        return "changed in the source"
    return "changed in the target" if t_changed else "differs"


def explain_record(run: SyncRun, dataflow: str, record_id: str, side: str) -> Explanation:
    spec, store = run.workspace.dataflows[dataflow], run.store
    link = store.link_by_source(dataflow, record_id) if side == "source" else store.link_by_target(dataflow, record_id)
    source_id = link.source_id if link else (record_id if side == "source" else None)
    target_id = link.target_id if link else (record_id if side == "target" else None)
    found = Explanation(spec, link, _read_side(run, spec, "source", source_id),
                        _read_side(run, spec, "target", target_id))
    for planned in run.plan(lambda _spec, action: found.next_run.append(action)):
        found.plan_error = planned.error
    ids = {i for i in (source_id, target_id, record_id) if i}
    found.conflicts = store.conflicts_of(dataflow, source_id) if source_id else []
    found.failed = [d for d in store.iter_dead_letters(dataflow) if d.record_id in ids]
    history_side, history_id = ("source", source_id) if source_id else ("target", record_id)
    found.history = store.history_of(dataflow, history_id, side=history_side, limit=RECENT_HISTORY)
    return found


def _read_side(run: SyncRun, spec: DataflowSpec, side: str, record_id: str | None) -> LiveSide:
    """A side's record read now through its connector and projected to the mapping's canonical values."""
    if record_id is None:
        return LiveSide(None, problem="no partner (not linked)")
    where = spec.source if side == "source" else spec.target
    mapper = run.mappers[spec.name]
    try:
        record = run.connectors[where.connection].read(where.entity, record_id)
        if record is None:
            return LiveSide(record_id, problem=f"{where.entity} {record_id} not found")
        values = mapper.project_source(record, StoreLinks(run.store)) if side == "source" \
            else mapper.project_target(record)
    except MapsyncError as exc:
        return LiveSide(record_id, problem=str(exc))
    return LiveSide(record_id, values)


@cli.command("explain")
@record_argument
@side_option
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
@click.pass_context
def explain(ctx: click.Context, record: str, side: str, as_json: bool) -> None:
    """Why a record is as it is: its link, the last-synced values, both sides' current values (read live),
    what the next run would do and why, waiting conflicts, its failed-record entry and its latest history.
    Changes nothing."""
    workspace = workspace_from(ctx)
    dataflow, record_id = parse_record(workspace, record)
    with SyncRun(workspace, dataflows=[dataflow], only_ids={dataflow: [record_id]}) as run:
        found = explain_record(run, dataflow, record_id, side)
    if as_json:
        click.echo(json.dumps(found.to_json(), ensure_ascii=False, indent=2))
        return
    for line in explanation_lines(found):
        click.echo(line)


def explanation_lines(found: Explanation) -> list[str]:
    spec = found.spec
    lines = [f"{spec.name}: {spec.source.label} -> {spec.target.label}"]
    link = found.link
    if link is None:
        lines.append("link: none (not linked)")
    else:
        lines.append(f"link: {spec.source.entity} {link.source_id} <-> {spec.target.entity} {link.target_id}, "
                     f"{link.state}, last synced {link.updated_at or 'never'}")
    for name, live in (("source", found.source), ("target", found.target)):
        if live.problem:
            lines.append(f"{name} now: {live.problem}")
    lines.append("properties (last synced source | target -> now source | target):")
    for row in found.properties():
        lines.append(f"  {row['property']}: {show(row['synced_source'])} | {show(row['synced_target'])} -> "
                     f"{show(row['source'])} | {show(row['target'])}  ({row['state']})")
    lines.extend(_next_run_lines(found))
    for conflict in found.conflicts:
        lines.append(f"conflict waiting on {conflict.prop} since {conflict.detected_at}: source "
                     f"{show(conflict.source_value)}, target {show(conflict.target_value)} "
                     f"(`mapsync links resolve {spec.name} {conflict.source_id} --use source|target`)")
    for letter in found.failed:
        status = f" (HTTP {letter.status})" if letter.status else ""
        lines.append(f"failed record ({letter.side} {letter.record_id}, {letter.attempts} attempt(s), last "
                     f"{letter.last_failed_at}){status}: {letter.reason}")
    if found.history:
        lines.append(f"latest history (all: `mapsync history {spec.name}:{found.history[0].source_id}`):")
        lines.extend(f"  {line}" for entry in found.history for line in entry_lines(entry))
    return lines


def _next_run_lines(found: Explanation) -> list[str]:
    if found.plan_error:
        return [f"next run: cannot be planned: {found.plan_error}"]
    if not found.next_run:
        return ["next run: nothing to do (in sync)"]
    lines = ["next run:"]
    for action in found.next_run:
        lines.extend(f"  {line}" for line in action_lines(action, found.spec.source.entity, found.spec.target.entity))
    return lines
