"""Writing records as a definition says: create (server or client ids, idempotency, 409), update (the
changes, or the whole record), delete, and optimistic concurrency with its 412.

A write whose answer was lost is retried by the HTTP layer; its retry then meets 409 (a client-chosen id
exists) or 412 (the version moved). Either way the record is read back, and when it holds every value sent
the write counts as done: the record itself tells our own earlier write from someone else's.

An update sent with a version the caller remembers (no record in hand) reads nothing first; its 412 is the
caller's to sort out (it knows what the record held when last in sync), so it is raised as it comes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from mapsync.connectors._common import holds_values, same_value
from mapsync.connectors.base import Record
from mapsync.connectors.declarative.definition import EntityDefinition
from mapsync.connectors.declarative.reading import Reader
from mapsync.connectors.declarative.requests import search
from mapsync.errors import ConflictError, ConnectorError, NotFoundError, PreconditionFailedError

Token = str | int | None  # a record's concurrency token (an ETag, a version number)


class Writer:
    """The writing half of a declarative connector. Thread-safe: it keeps no state between calls."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.name = reader.name
        self.http = reader.http
        self.title = reader.definition.title

    # -- create ---------------------------------------------------------------------------------

    def create(self, entity: EntityDefinition, record: Record, idempotency_key: str) -> Record:
        spec = entity.create
        if spec is None:
            raise ConnectorError(f"{self.title} cannot create a {entity.info.name}: its definition has no create",
                                 connection=self.name, method="POST")
        info = entity.info
        body = {key: value for key, value in record.items() if key not in info.server_fields}
        if spec.omit_nulls:
            body = {key: value for key, value in body.items() if value is not None}
        headers = {spec.idempotency_header: idempotency_key} if spec.idempotency_header else {}
        record_id = ""
        if spec.client_ids:
            record_id = str(record.get(info.key) or idempotency_key)
            body[info.key] = record_id
            # Never create a record that could not be read or written again by its id.
            for template in (entity.update.path if entity.update else None, entity.read.path):
                if template:
                    self.reader.item_path(spec.method, template, entity, record_id)
        path = self.reader.item_path(spec.method, spec.path, entity, record_id) if spec.client_ids else spec.path
        try:
            response = self.http.request(spec.method, path, json=body, headers=headers)
        except ConflictError:
            if not spec.client_ids:
                raise
            # The id exists: our own earlier attempt, stored before its answer was lost, if it holds every
            # value we sent; any other record with this id is a real conflict, never taken as ours.
            stored = self.reader.read(entity, record_id)
            if stored is None or not holds_values(stored, body):
                raise
            return stored
        return self._stored(entity, record_id, response, spec.record)

    # -- update ---------------------------------------------------------------------------------

    def update(self, entity: EntityDefinition, record_id: str, changes: Record, current: Record,
               version: Token = None) -> Record:
        """Write `changes` onto the record. `current` is the record as last listed or read ({}: not seen);
        `version` its concurrency token remembered from an earlier listing or write, used when `current` is {}."""
        spec = entity.update
        if spec is None:
            raise ConnectorError(f"{self.title} cannot update a {entity.info.name}: its definition has no update",
                                 connection=self.name, method="PUT")
        info = entity.info
        remembered = not current and version is not None and entity.concurrency is not None and not spec.whole
        if not current and (spec.whole or (entity.concurrency is not None and not remembered)):
            # Read only when the write needs it: a whole-record write needs the record, a precondition its version.
            current = self._read_current(entity, record_id)
        if spec.whole:
            merged = {**current, **changes}
            known = info.schema.get("properties", {})
            body = {key: value for key, value in merged.items()
                    if key not in info.server_fields and (key in known or not spec.carry_schema)}
        else:
            body = {key: value for key, value in changes.items() if key not in info.server_fields and key != info.key}
        if spec.id_in_body:
            body[info.key] = record_id
        headers = self._precondition(entity, version if remembered else self.version_of(entity, current), body)
        path = self.reader.item_path(spec.method, spec.path, entity, record_id)
        try:
            response = self.http.request(spec.method, path, json=body, headers=headers)
        except PreconditionFailedError:
            if remembered:
                raise  # the caller reads the record and judges it against what it last synced
            # Either someone changed the record since we read it, or this was the retry of our own write
            # whose answer was lost after the server stored it. The record itself tells which.
            written = self._written_already(entity, record_id, body, current)
            if written is None:
                raise
            return written
        return self._stored(entity, record_id, response, spec.record)

    @staticmethod
    def version_of(entity: EntityDefinition, record: Record | None) -> Token:
        """The record's concurrency token as `concurrency.version` names it (None: no concurrency, or none)."""
        spec = entity.concurrency
        version = search(spec.version, record) if spec is not None and record else None
        return version if isinstance(version, str | int) and not isinstance(version, bool) else None

    @staticmethod
    def _precondition(entity: EntityDefinition, version: Token, body: dict[str, Any]) -> dict[str, str]:
        spec = entity.concurrency
        if spec is None or version is None:
            return {}
        if spec.body_field:
            body[spec.body_field] = version
        return {spec.header: str(version)} if spec.header else {}

    def _read_current(self, entity: EntityDefinition, record_id: str) -> Record:
        current = self.reader.read(entity, record_id)
        if current is None:
            raise NotFoundError(f"{entity.info.name} {record_id} no longer exists", connection=self.name)
        return current

    def _written_already(self, entity: EntityDefinition, record_id: str, body: Record, current: Record
                         ) -> Record | None:
        """After a 412: the record as our write left it, or None when it does not hold what we sent."""
        stored = self.reader.read(entity, record_id)
        sent = {key: value for key, value in body.items() if entity.concurrency is None
                or key != entity.concurrency.body_field}
        if stored is None or not holds_values(stored, sent):
            return None
        server_fields = entity.info.server_fields
        expected = {**current, **sent}
        if same_value(_without(stored, server_fields), _without(expected, server_fields)):
            return stored  # exactly what our write makes: the link stores its real version
        # Holds what we sent, and another writer's change besides. Answer the record as our write alone
        # left it, with the version we read: the next run then sees the newer version and carries the
        # other change over instead of taking it as already in sync.
        return expected

    # -- delete ---------------------------------------------------------------------------------

    def delete(self, entity: EntityDefinition, record_id: str) -> None:
        spec = entity.delete
        if spec is None:
            template = entity.update.path if entity.update else entity.listing.path
            raise ConnectorError(
                f"{self.title} has no delete: remove the record in {self.title} itself, or let the mapping's "
                "delete policy unlink it",
                connection=self.name, method="DELETE",
                path=self.reader.item_path("DELETE", template, entity, record_id),
            )
        path = self.reader.item_path(spec.method, spec.path, entity, record_id)
        with contextlib.suppress(NotFoundError):  # already gone: the goal of a delete is reached
            self.http.request(spec.method, path)

    # -- answers --------------------------------------------------------------------------------

    def _stored(self, entity: EntityDefinition, record_id: str, response: httpx.Response, selector: str | None
                ) -> Record:
        """The stored record from a write's answer; read back when the answer carries none."""
        record = self.reader.record_from(response, selector)
        if record and (record_id or record.get(entity.info.key) not in (None, "")):
            return record
        stored = self.reader.read(entity, record_id) if record_id else None
        if stored is None:
            reason = (f"the write succeeded but {entity.info.name} {record_id!r} cannot be read back" if record_id
                      else f"the server's answer is not a record with an id ({entity.info.key})")
            raise ConnectorError(reason, connection=self.name, method=response.request.method,
                                 path=response.request.url.path, status=response.status_code)
        return stored


def _without(record: Record, names: frozenset[str]) -> Record:
    return {key: value for key, value in record.items() if key not in names}
