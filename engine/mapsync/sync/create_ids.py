"""The idempotency key of each create, which is the new record's id where the client chooses ids.

Without `create_id:` (and always for a system that chooses its own ids, such as Custompms) the key is
`mapsync-<dataflow>-<uuid>`. With it, the mapping's template makes the id (spec/create_id.py), a
`{counter}` taken from the state store in the transaction that records the pending create (so a crash
never gives one twice, at worst skips one).

An id some other record already holds is refused by the system (Tidsbanken: 409, and the record there
does not hold what was sent, so the connector never takes it as ours). Such a create is tried again with a
new id, up to MAX_TRIES ids per record and run, but only when the refused id was made in this run: an id
recorded by an earlier run may name our own record, created before a crash and edited since, and taking
a new one would make a duplicate; that record fails instead, for a person to look at.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from jmespath.exceptions import JMESPathError

from mapsync.errors import ConflictError, MappingError
from mapsync.mapping.paths import Getter, make_getter
from mapsync.spec.create_id import client_chooses_ids, fill_template, placeholders
from mapsync.spec.model import CreateId, DataflowSpec
from mapsync.state.base import StateStore
from mapsync.sync.actions import Action, ActionKind

MAX_TRIES = 5  # ids tried per record and run before the record fails (a busy prefix: choose another)


def random_key(dataflow: str) -> str:
    return f"mapsync-{dataflow}-{uuid.uuid4().hex}"


class CreateIds:
    """Makes the keys of one dataflow's creates and decides which refused creates are tried again."""

    def __init__(self, spec: DataflowSpec, store: StateStore) -> None:
        self.spec = spec
        self.store = store
        schemas = {"source": spec.source_schema, "target": spec.target_schema}
        # Only for a side whose system takes the client's id: elsewhere a template could not name anything.
        self.entries: dict[str, CreateId] = {side: entry for side, entry in spec.create_ids.items()
                                             if client_chooses_ids(schemas[side])}
        self._values: dict[str, Getter] = {side: make_getter(entry.expression)
                                           for side, entry in self.entries.items() if entry.expression}
        self._tries: dict[tuple[str, str], int] = {}  # (side, record id) -> ids made for it in this run

    def used_by(self, batch: Iterable[Action]) -> bool:
        """Whether the batch creates a record with a templated id (then its counters and pendings, and the
        removal of pendings whose id was refused, share one transaction)."""
        return bool(self.entries) and any(a.kind == ActionKind.CREATE and a.side in self.entries for a in batch)

    def new_key(self, side: str, record_id: str, body: Mapping[str, Any]) -> str:
        """The key of a create made now; replaces (in the store) a pending one whose id was refused."""
        entry = self.entries.get(side)
        if entry is None:
            return random_key(self.spec.name)
        tries = self._tries.get((side, record_id), 0)
        if tries:
            self.store.remove_pending(self.spec.name, side, record_id)  # its id was refused: nothing made
        self._tries[(side, record_id)] = tries + 1
        names = placeholders(entry.template)
        counter = self.store.take_counter(self.spec.name, side) if "counter" in names else None
        value = self._value(side, entry, body) if "value" in names else None
        return fill_template(entry.template, counter=counter, value=value)

    def try_again(self, action: Action, error: Exception | None) -> bool:
        """Whether a create refused because its id is another record's takes a new id now."""
        return self._refused(action, error) and self._tries.get(_key(action), MAX_TRIES) < MAX_TRIES

    def gave_up(self, action: Action, error: Exception | None) -> bool:
        """Whether every id this run made for the record was refused: its pending create names nothing."""
        return self._refused(action, error) and self._tries.get(_key(action), 0) >= MAX_TRIES

    def _refused(self, action: Action, error: Exception | None) -> bool:
        return (action.kind == ActionKind.CREATE and action.side in self.entries and not action.idempotency_key
                and isinstance(error, ConflictError))

    def _value(self, side: str, entry: CreateId, body: Mapping[str, Any]) -> str:
        try:
            value = self._values[side](body)
        except JMESPathError as exc:
            raise MappingError(f"{self.spec.file}:{entry.line}: create_id.{side}.expression "
                               f"{entry.expression!r} failed on the record being created: {exc}") from None
        if value is None or value == "" or isinstance(value, dict | list):
            raise MappingError(f"{self.spec.file}:{entry.line}: create_id.{side}.expression {entry.expression!r} "
                               f"gives {value!r} for the record being created, not a value for {{value}}")
        return str(value)


def pending_record_id(action: Action) -> str:
    """The id a create's pending entry is kept under: the record on the other side that it mirrors."""
    return (action.source_id if action.side == "target" else action.target_id) or ""


def _key(action: Action) -> tuple[str, str]:
    return action.side, pending_record_id(action)
