"""Saved plans: `mapsync plan --out FILE` writes one, `mapsync apply --plan FILE` performs exactly it.

The file is JSON (format 1), meant to be read in a review:

    {"mapsync_plan": 1, "created_at": ..., "max_delete_share": null,
     "workspace": {"connections": {"custompms": {"type": "custompms", "base_url": "https://..."}, ...}},
     "dataflows": {"kunde-customer": {
         "mapping": {"file": "mappings/kunde-customer.yaml", "sha256": ...},
         "state": {"cursors": {"source": ..., "target": ...}, "links_sha256": ...},
         "counts": {...},
         "actions": [{"action": "update", "source_id": ..., "target_changes": {...},
                      "markers": {"source": ..., "target": ...}}, ...]}}}

A plan is refused (exit 2) when it was made for another workspace (the connections' type and base_url),
with other mappings (a digest of each mapping file's parsed content, so comments and layout do not count)
or for another state: per dataflow, the cursors and a digest of the links its actions touch. Each record
is read again by id and planned again; one whose change marker (the entity schema's `x-modified`) moved on
either side since the plan was made, or that would now be planned differently, is `stale`: not written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mapsync import __version__
from mapsync.errors import Location, SpecError
from mapsync.redact import redact_url
from mapsync.spec._yaml import load_document
from mapsync.spec.model import DataflowSpec, Workspace
from mapsync.state.base import StateStore
from mapsync.sync.actions import CHANGES, Action, ActionKind
from mapsync.sync.runner import PlannedDataflow
from mapsync.sync.scan import modified_of

FORMAT_KEY, FORMAT = "mapsync_plan", 1
# What apply --plan performs; the other kinds (fail, defer, ...) are in the file for the reviewer only.
PERFORMED = CHANGES | {ActionKind.CONFLICT}
NEW_PLAN = "make a new plan with `mapsync plan --out`"

Entry = dict[str, Any]  # one action as saved
# An action's first line as `mapsync plan` prints it (the CLI's renderer): a stale record's reason quotes it.
Headline = Callable[[Action, str, str], str]


class SavedPlanError(SpecError):
    """A plan file that cannot be applied here: exit 2, naming the file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message, Location(str(path)))


# -- what is recorded ---------------------------------------------------------------------------------

def markers(spec: DataflowSpec, action: Action) -> dict[str, str | None]:
    """Each side's change marker as the action saw it: read now, else the link's (the side was not read,
    so the plan relied on it being as last synced); None for a side that has no record (gone, or to create)."""
    removal = action.kind in {ActionKind.DELETE, ActionKind.UNLINK}
    link = action.link
    return {
        "source": None if removal and action.side == "target" else _marker(
            spec.source_schema, action.source_record, action.source_modified, link.source_version if link else None),
        "target": None if removal and action.side == "source" else _marker(
            spec.target_schema, action.target_record, None, link.target_version if link else None),
    }


def _marker(schema: dict[str, Any], record: dict[str, Any] | None, given: str | None, linked: str | None
            ) -> str | None:
    if record is not None:
        return modified_of(schema, record)
    return given or linked


def entry(spec: DataflowSpec, action: Action) -> Entry:
    return {**action.to_json(), "markers": markers(spec, action)}


def _requested_id(item: Entry) -> str:
    """The id the action is read again by: its source id, or for a create back in the source its target id."""
    return str(item.get("source_id") or item.get("target_id") or "")


def _shape(item: Entry) -> dict[str, Any]:
    """What must not differ between the planned action and the one planned again: kind, records, and which
    properties change (the values follow from the records, whose markers are compared on their own)."""
    return {"action": item.get("action"), "side": item.get("side"), "source_id": item.get("source_id"),
            "target_id": item.get("target_id"), "target_changes": sorted(item.get("target_changes") or {}),
            "source_changes": sorted(item.get("source_changes") or {}),
            "conflicts": sorted(c.get("property", "") for c in item.get("conflicts") or [])}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def workspace_fingerprint(workspace: Workspace) -> dict[str, Any]:
    """The connections, without secrets: what makes two workspaces the same systems."""
    return {name: {"type": settings.get("type"), "base_url": redact_url(str(settings.get("base_url") or ""))}
            for name, settings in sorted(workspace.connections.items())}


def mapping_digest(spec: DataflowSpec) -> str:
    doc, _ = load_document(Path(spec.file), spec.file)
    return _digest(None if doc is None else doc.data)


def state_position(store: StateStore, dataflow: str, items: list[Entry]) -> dict[str, Any]:
    """The cursors and a digest of the links the plan's actions touch (looked up by both ids)."""
    source_ids = sorted({str(i["source_id"]) for i in items if i.get("source_id")})
    target_ids = sorted({str(i["target_id"]) for i in items if i.get("target_id")})
    links = {link.source_id: link for link in store.get_links(dataflow, source_ids=source_ids)}
    links.update({link.source_id: link for link in store.get_links(dataflow, target_ids=target_ids)})
    rows = [[link.source_id, link.target_id, link.source_values, link.target_values, link.source_version,
             link.target_version, link.state] for _, link in sorted(links.items())]
    return {"cursors": {side: store.get_cursor(dataflow, side) for side in ("source", "target")},
            "links_sha256": _digest(rows)}


# -- plan --out ---------------------------------------------------------------------------------------

class PlanWriter:
    """Collects a plan's actions as `mapsync plan` streams them, and saves them with what pins them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.actions: dict[str, list[Entry]] = {}

    def add(self, spec: DataflowSpec, action: Action) -> None:
        self.actions.setdefault(spec.name, []).append(entry(spec, action))

    def save(self, workspace: Workspace, store: StateStore, planned: list[PlannedDataflow],
             max_delete_share: float | None) -> None:
        dataflows = {}
        for item in planned:
            actions = self.actions.get(item.spec.name, [])
            dataflows[item.spec.name] = {
                "mapping": {"file": item.spec.file, "sha256": mapping_digest(item.spec)},
                "state": state_position(store, item.spec.name, _performed(actions)),
                "counts": vars(item.counts),
                "actions": actions,
            }
        document = {FORMAT_KEY: FORMAT, "mapsync_version": __version__,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "max_delete_share": max_delete_share,
                    "workspace": {"connections": workspace_fingerprint(workspace)}, "dataflows": dataflows}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n",
                             encoding="utf-8")


def _performed(items: list[Entry]) -> list[Entry]:
    return [item for item in items if item.get("action") in PERFORMED]


# -- apply --plan -------------------------------------------------------------------------------------

@dataclass
class SavedPlan:
    path: Path
    document: dict[str, Any]
    headline: Headline

    @classmethod
    def load(cls, path: Path, *, headline: Headline) -> SavedPlan:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SavedPlanError(path, f"cannot read the plan: {exc}") from None
        if not isinstance(document, dict) or FORMAT_KEY not in document:
            raise SavedPlanError(path, "not a mapsync plan (write one with `mapsync plan --out FILE`)")
        if document[FORMAT_KEY] != FORMAT:
            raise SavedPlanError(path, f"plan format {document[FORMAT_KEY]!r}; this mapsync reads format {FORMAT}")
        if not isinstance(document.get("dataflows"), dict) or not isinstance(document.get("workspace"), dict):
            raise SavedPlanError(path, "not a complete mapsync plan: 'dataflows' or 'workspace' is missing")
        return cls(path, document, headline)

    @property
    def dataflows(self) -> dict[str, dict[str, Any]]:
        return dict(self.document["dataflows"])

    @property
    def max_delete_share(self) -> float | None:
        share = self.document.get("max_delete_share")
        return float(share) if isinstance(share, int | float) else None

    def performed(self, dataflow: str) -> dict[str, Entry]:
        """The actions apply performs, by the id each is read again by."""
        performed: dict[str, Entry] = {}
        for item in _performed(self.dataflows.get(dataflow, {}).get("actions") or []):
            performed.setdefault(_requested_id(item), item)
        return performed

    def only_ids(self) -> dict[str, list[str]]:
        return {name: list(self.performed(name)) for name in self.dataflows}

    def _refuse(self, message: str) -> SavedPlanError:
        return SavedPlanError(self.path, f"{message}; {NEW_PLAN}")

    # -- refusals (exit 2) ----------------------------------------------------------------------------

    def check_workspace(self, workspace: Workspace) -> None:
        """Refuse a plan made for other systems or other mappings, before anything is read."""
        then = self.document["workspace"].get("connections") or {}
        now = workspace_fingerprint(workspace)
        for name in sorted(set(then) | set(now)):
            if then.get(name) != now.get(name):
                raise self._refuse(f"made for another workspace: connection {name!r} was {_shown(then.get(name))}, "
                                   f"here it is {_shown(now.get(name))}")
        for name, saved in self.dataflows.items():
            spec = workspace.dataflows.get(name)
            if spec is None:
                raise self._refuse(f"made for dataflow {name!r}, which this workspace does not have")
            if (saved.get("mapping") or {}).get("sha256") != mapping_digest(spec):
                raise self._refuse(f"{spec.file} (dataflow {name}) changed since the plan was made")

    def check(self, store: StateStore) -> None:
        """Refuse a plan made for an older state (another apply ran since), under the run's locks."""
        for name, saved in self.dataflows.items():
            position = state_position(store, name, list(self.performed(name).values()))
            if saved.get("state") != position:
                what = "its cursors moved" if (saved.get("state") or {}).get("cursors") != position["cursors"] \
                    else "links of its records changed"
                raise self._refuse(f"the state of {name} changed since the plan was made ({what}: the plan was "
                                   f"applied already, or another apply ran)")

    # -- per record: stale ----------------------------------------------------------------------------

    def _staleness(self, spec: DataflowSpec, saved: Entry, action: Action) -> str:
        then = saved.get("markers") or {}
        now = markers(spec, action)
        changed = [f"{side.label} changed ({then.get(name) or 'none'} -> {now[name] or 'gone'})"
                   for name, side in (("source", spec.source), ("target", spec.target))
                   if then.get(name) != now[name]]
        if changed:
            return f"{' and '.join(changed)} since the plan was made"
        if _shape(json.loads(json.dumps(action.to_json(), default=str))) != _shape(saved):
            return f"would now be planned as: {self.headline(action, spec.source.entity, spec.target.entity)}"
        return ""

    def screen(self, spec: DataflowSpec, actions: Iterator[Action]) -> Iterator[Action]:
        """The planned actions, planned again from records read again by id: those still the same go on,
        the others come out as `stale`; an action the plan does not hold is never performed."""
        planned = self.performed(spec.name)
        answered: set[str] = set()
        for action in actions:
            key = next((i for i in (action.source_id, action.target_id) if i and i in planned), None)
            if key is None or key in answered:
                continue
            answered.add(key)
            problem = self._staleness(spec, planned[key], action)
            yield action if not problem else _stale(spec, planned[key], problem)
        for key, item in planned.items():
            if key not in answered:
                yield _stale(spec, item, "found on neither side any more")


def _shown(connection: dict[str, Any] | None) -> str:
    return "absent" if connection is None else f"{connection.get('type')} at {connection.get('base_url')}"


def _stale(spec: DataflowSpec, saved: Entry, problem: str) -> Action:
    return Action(ActionKind.STALE, spec.name, saved.get("source_id"), saved.get("target_id"),
                  label=saved.get("label", ""),
                  reason=f"{problem}; not written (the next plan includes it)")
