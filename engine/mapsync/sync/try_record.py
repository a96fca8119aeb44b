"""One live record through a dataflow's mapping, both ways, with no write (`mapsync test --record`).

Read the record named (a source record, or a target record), map it to the other side, read its linked
partner (through the state store's link) and map that back: what a create would send, and what each side
would receive from the other now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapsync.errors import MappingError, MapsyncError
from mapsync.mapping.mapper import Mapper
from mapsync.spec.model import DataflowSpec, Side, Workspace
from mapsync.sync.lookup import StoreLinks
from mapsync.sync.runner import SyncRun

SIDES = ("source", "target")


@dataclass
class Mapped:
    """An expression's outcome on a record: the values, or the error that stopped them."""

    values: dict[str, Any] | None = None
    error: str = ""


@dataclass
class RecordTrial:
    spec: DataflowSpec
    side: str  # the side the record named was read from
    record_id: str
    record: dict[str, Any]
    projection: Mapped  # the record in the other side's form: what a create there would send
    partner_id: str | None = None  # the linked record of the other side, when there is a link
    partner: dict[str, Any] | None = None  # None with a partner_id: the linked record is gone
    reverse: Mapped = field(default_factory=Mapped)  # the partner in this side's form: what it would write here
    # (property, this side's value, the partner's): None when a row failed on either record
    differences: list[tuple[str, Any, Any]] | None = None

    @property
    def other(self) -> str:
        return "target" if self.side == "source" else "source"

    def label(self, side: str) -> str:
        return (self.spec.source if side == "source" else self.spec.target).label

    @property
    def failed(self) -> bool:
        return bool(self.projection.error or self.reverse.error)


class RecordNotFound(MapsyncError):
    """The record named could not be read."""


def try_record(workspace: Workspace, dataflow: str, side: str, record_id: str) -> RecordTrial:
    """The trial of one record; RecordNotFound when its system has no such record (a ConnectorError when
    the system cannot be asked)."""
    with SyncRun(workspace, dataflows=[dataflow]) as run:
        spec = workspace.dataflows[dataflow]
        mapper, links = run.mappers[dataflow], StoreLinks(run.store)
        this, other = (spec.source, spec.target) if side == "source" else (spec.target, spec.source)
        record = run.connectors[this.connection].read(this.entity, record_id)
        if record is None:
            raise RecordNotFound(f"{dataflow}: {this.label} {record_id!r} not found "
                                 f"(through connection {this.connection!r})")
        trial = RecordTrial(spec, side, record_id, record, _mapped(mapper, side, record, links))
        link = (run.store.link_by_source(dataflow, record_id) if side == "source"
                else run.store.link_by_target(dataflow, record_id))
        if link is not None:
            trial.partner_id = link.target_id if side == "source" else link.source_id
            trial.partner = _read(run, other, trial.partner_id)
        if trial.partner is not None:
            trial.reverse = _mapped(mapper, trial.other, trial.partner, links)
            trial.differences = _differences(mapper, side, record, trial.partner, links)
        return trial


def _read(run: SyncRun, side: Side, record_id: str) -> dict[str, Any] | None:
    return run.connectors[side.connection].read(side.entity, record_id)


def _mapped(mapper: Mapper, side: str, record: dict[str, Any], links: StoreLinks) -> Mapped:
    """A record of `side` in the other side's form (forward for a source record, backward for a target)."""
    try:
        if side == "source":
            return Mapped(mapper.forward(record, links))
        return Mapped(mapper.backward(record, links))
    except MappingError as exc:
        return Mapped(error=str(exc))


def _differences(mapper: Mapper, side: str, record: dict[str, Any], partner: dict[str, Any],
                 links: StoreLinks) -> list[tuple[str, Any, Any]] | None:
    """The mapped properties on which the pair disagrees now, compared in their canonical form."""
    source, target = (record, partner) if side == "source" else (partner, record)
    try:
        source_values, target_values = mapper.project_source(source, links), mapper.project_target(target)
    except MappingError:
        return None  # the projection's error is shown already
    props = sorted(set(source_values) | set(target_values))
    pairs = [(p, source_values.get(p), target_values.get(p)) for p in props
             if source_values.get(p) != target_values.get(p)]
    return pairs if side == "source" else [(p, t, s) for p, s, t in pairs]


def parse_record_ref(text: str, known: list[str]) -> tuple[str, str, str]:
    """DATAFLOW:ID (a source record) or DATAFLOW:target:ID / DATAFLOW:source:ID -> (dataflow, side, id)."""
    dataflow, sep, rest = text.partition(":")
    if not sep or not rest:
        raise ValueError(f"{text!r} is not DATAFLOW:ID (or DATAFLOW:target:ID for a target record)")
    if dataflow not in known:
        raise ValueError(f"unknown dataflow {dataflow!r} (known: {', '.join(known)})")
    side, sep, record_id = rest.partition(":")
    if sep and side in SIDES and record_id:
        return dataflow, side, record_id
    return dataflow, "source", rest
