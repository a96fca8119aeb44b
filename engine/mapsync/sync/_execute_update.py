"""The executor's updates: written with the concurrency token the link remembers, read only when needed.

An update used to read the record first to learn its version: a GET per changed record. The link now keeps
each side's token (from the listing, or from the answer to mapsync's own write), so the write goes out
with it at once. The record is still read when the write needs what the link does not keep:

- a whole-record write (Tidsbanken's PUT of a Kunde replaces every property; the link holds only the mapped
  ones), done by the connector when it is given no record;
- a nested object the mapping fills only in part (avdeling-customer maps three of postal_address's four
  lines): it is sent whole, so its other members come from the record;
- a 412 to a remembered token: the record moved since the last sync. It is read and judged against the
  link: holding what this write sends, it was this write (an answer lost, the HTTP layer's retry refused);
  holding what the link has, only something mapsync does not map changed, and the write goes once more
  with the fresh version; anything else is someone's change to a mapped property, and the 412 stands (the
  record fails alone, and the next run lists it and merges three ways).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mapsync.connectors.base import Connector, Record
from mapsync.errors import MappingError, NotFoundError, PreconditionFailedError
from mapsync.mapping.mapper import CompiledRow
from mapsync.state.base import Token, Values
from mapsync.sync.actions import Action
from mapsync.sync.context import DataflowContext, UsesContext


class Updates(UsesContext):
    """Sends the updates of one dataflow's actions (from the executor's worker threads: it keeps no state
    but what it works out once, at the start)."""

    def __init__(self, ctx: DataflowContext) -> None:
        self.ctx = ctx
        self._partly_mapped = partly_mapped_objects(ctx.mapper.rows, ctx.spec.target_schema)
        # Each side's token reader and entity, looked up once: a create asks for two tokens.
        self._tokens = {side: (getattr(connector, "version_of", None), entity)
                        for side, (connector, entity) in (("source", self._side("source")),
                                                          ("target", self._side("target")))}

    def token(self, side: str, record: Record | None) -> Token:
        """The record's concurrency token, when the side's connector names one (a plugin may not)."""
        version_of, entity = self._tokens[side]
        if not record or not callable(version_of):
            return None
        token = version_of(entity, record)
        return token if isinstance(token, str | int) else None

    def update_target(self, action: Action) -> Record:
        target_id = action.target_id or ""
        changes = {path: new for path, (_, new) in action.target_changes.items()}
        current = action.target_record
        if current is None and any(path.split(".", 1)[0] in self._partly_mapped for path in changes):
            current = self._read("target", target_id)
        remembered = action.link.target_token if action.link is not None and current is None else None
        try:
            return self._send("target", target_id, self.mapper.target_patch(changes, current), current or {},
                              remembered)
        except PreconditionFailedError as refused:
            if remembered is None:
                raise
            fresh, landed = self._judged("target", action, changes, refused)
        # Retried with the record just read: a 412 now is someone's write since, and fails the record.
        return fresh if landed else self._send("target", target_id, self.mapper.target_patch(changes, fresh), fresh,
                                               None)

    def update_source(self, action: Action, body: dict[str, Any]) -> Record:
        source_id = action.source_id or ""
        current = action.source_record
        remembered = action.link.source_token if action.link is not None and current is None else None
        try:
            # The connector reads the record itself if its write needs it (a whole-record PUT).
            return self._send("source", source_id, body, current or {}, remembered)
        except PreconditionFailedError as refused:
            if remembered is None:
                raise
            changes = {path: new for path, (_, new) in action.source_changes.items()}
            fresh, landed = self._judged("source", action, changes, refused)
        return fresh if landed else self._send("source", source_id, body, fresh, None)

    # -- the parts -----------------------------------------------------------------------------------

    def _side(self, side: str) -> tuple[Connector, str]:
        if side == "target":
            return self.target, self.spec.target.entity
        return self.source, self.spec.source.entity

    def _send(self, side: str, record_id: str, changes: Record, current: Record, remembered: Token) -> Record:
        connector, entity = self._side(side)
        if remembered is None:  # a plugin connector need not know the keyword
            return connector.update(entity, record_id, changes, current=current)
        update: Any = connector.update
        return dict(update(entity, record_id, changes, current=current, version=remembered))

    def _read(self, side: str, record_id: str) -> Record:
        connector, entity = self._side(side)
        record = connector.read(entity, record_id)
        if record is None:
            raise NotFoundError(f"{entity} {record_id} no longer exists", connection=connector.name)
        return record

    def _judged(self, side: str, action: Action, changes: Values, refused: PreconditionFailedError
                ) -> tuple[Record, bool]:
        """After a 412 to a remembered token: the record read again, and whether it already holds this write.
        Raises the 412 (`refused`) again when someone changed a mapped property since the last sync."""
        link = action.link
        assert link is not None, "a remembered token comes from the action's link"
        record_id = (action.target_id if side == "target" else action.source_id) or ""
        fresh = self._read(side, record_id)
        synced = link.target_values if side == "target" else link.source_values
        try:
            now = self.mapper.project_target(fresh) if side == "target" else \
                self.mapper.project_source(fresh, self.links)
        except MappingError:
            now = None  # cannot be judged: left to the next run's merge
        if now is not None and now == {**synced, **changes}:
            return fresh, True  # this very write, stored before its answer was lost
        if now is not None and now == synced:
            return fresh, False  # only what mapsync does not map moved the version: write again
        raise refused


def partly_mapped_objects(rows: Sequence[CompiledRow], schema: Mapping[str, Any]) -> frozenset[str]:
    """The target's top-level objects that a patch sends whole but the mapping does not fill whole: their
    other members are known only from the record itself (an object of unknown members counts as partly)."""
    members: dict[str, set[str]] = {}
    deep: set[str] = set()
    for compiled in rows:
        parts = compiled.target_parts
        if len(parts) == 2:
            members.setdefault(parts[0], set()).add(parts[1])
        elif len(parts) > 2:
            deep.add(parts[0])
    properties = schema.get("properties", {})
    partly = set(deep)
    for top, mapped in members.items():
        declared = properties.get(top, {}) if isinstance(properties, Mapping) else {}
        known = declared.get("properties") if isinstance(declared, Mapping) else None
        closed = isinstance(declared, Mapping) and declared.get("additionalProperties") is False
        if not (closed and isinstance(known, Mapping) and set(known) <= mapped):
            partly.add(top)
    return frozenset(partly)
