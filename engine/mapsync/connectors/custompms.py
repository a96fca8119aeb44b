"""The Custompms connector: a plain JSON REST API under /api/v1 (see contracts/custompms-api.md).

The server assigns ids, so a create is made idempotent with the `Idempotency-Key` header; updates
carry `If-Match: <version>` so that a record changed since it was read answers 412 instead of being
overwritten. A 412 can also answer the retry of our own write whose answer was lost: the record is read
again, and if it holds what we sent, the write counts as done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from mapsync.connectors import load_entity_info, register
from mapsync.connectors._common import HttpBackedConnector, holds_values, same_value
from mapsync.connectors._paging import CursorPaging, PageCap, parse_timestamp, utc_z
from mapsync.connectors.base import Change, EntityInfo, Record
from mapsync.connectors.http import HTTP_SETTINGS_PROPERTIES
from mapsync.errors import ConnectorError, NotFoundError, PagingError, PreconditionFailedError

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "custompms connection",
    "type": "object",
    "properties": {
        "type": {"const": "custompms"},
        "base_url": {"type": "string", "minLength": 1, "description": "the server, without /api/v1"},
        "token": {"type": "string", "minLength": 1, "description": "the bearer token"},
        **HTTP_SETTINGS_PROPERTIES,
    },
    "required": ["type", "base_url", "token"],
    "additionalProperties": False,
}

AUTH_HINT = "check the connection's token setting (CUSTOMPMS_TOKEN in the sample mapsync.yaml)"


@dataclass(frozen=True)
class _Resource:
    info: EntityInfo
    path: str


def _resources() -> dict[str, _Resource]:
    return {
        "Customer": _Resource(load_entity_info("custompms", "customer.json", can_delete=True), "/api/v1/customers"),
        "Project": _Resource(load_entity_info("custompms", "project.json", can_delete=True), "/api/v1/projects"),
    }


@register("custompms")
class CustompmsConnector(HttpBackedConnector):
    """One connection to Custompms. Thread-safe: its only shared state is the HttpClient."""

    system = "Custompms"

    SETTINGS_SCHEMA = SETTINGS_SCHEMA
    AUTH_HINT = AUTH_HINT

    def __init__(self, name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, settings, transport=transport, sleep=sleep)
        self._resources = _resources()

    def _credentials(self, settings: Mapping[str, Any]) -> tuple[dict[str, str], Sequence[str]]:
        token = str(settings["token"])
        return {"Authorization": f"Bearer {token}"}, (token,)

    # -- reading --------------------------------------------------------------------------------

    def entities(self) -> Mapping[str, EntityInfo]:
        return {name: resource.info for name, resource in self._resources.items()}

    def list_changes(self, entity: str, since: str | None) -> Iterator[Change]:
        resource = self._resource(entity)
        pager = CursorPaging(self.name, resource.path)
        cap = PageCap(self.max_pages, entity, connection=self.name, path=resource.path)
        base: dict[str, str | int] = {}
        if since is not None:
            base["updated_since"] = self._normalised(since)
        base.update({"limit": self.page_size, "include_deleted": "true"})
        while not pager.finished:
            cap.next_page()
            params = dict(base) if pager.cursor is None else {**base, "cursor": pager.cursor}
            records, next_cursor = self._page(resource, params)
            changes = [self._change(resource, record) for record in records]
            pager.advance([change.id for change in changes], next_cursor)
            yield from changes

    def read(self, entity: str, record_id: str) -> Record | None:
        resource = self._resource(entity)
        try:
            response = self._http.request("GET", self._item_path("GET", resource.path, entity, record_id))
        except NotFoundError:
            return None
        return self._record(response)

    # -- writing --------------------------------------------------------------------------------

    def create(self, entity: str, record: Record, *, idempotency_key: str) -> Record:
        resource = self._resource(entity)
        body = {k: v for k, v in record.items() if k not in resource.info.server_fields}
        # 201 is a fresh create, 200 the answer to a repeated key: both carry the stored record.
        response = self._http.request("POST", resource.path, json=body, headers={"Idempotency-Key": idempotency_key})
        return self._record(response)

    def update(self, entity: str, record_id: str, changes: Record, *, current: Record) -> Record:
        resource = self._resource(entity)
        body = {k: v for k, v in changes.items() if k not in resource.info.server_fields}
        headers = {}
        if current.get("version") is not None:
            headers["If-Match"] = str(current["version"])
        path = self._item_path("PATCH", resource.path, entity, record_id)
        try:
            response = self._http.request("PATCH", path, json=body, headers=headers)
        except PreconditionFailedError:
            # Either someone changed the record since we read it, or this was the retry of our own PATCH
            # whose answer was lost after the server stored it. The record itself tells which.
            written = self._written_already(entity, record_id, body, current)
            if written is None:
                raise
            return written
        return self._record(response)

    def delete(self, entity: str, record_id: str) -> None:
        resource = self._resource(entity)
        path = self._item_path("DELETE", resource.path, entity, record_id)
        with contextlib.suppress(NotFoundError):  # already gone: the goal of a delete is reached
            self._http.request("DELETE", path)

    # -- housekeeping ---------------------------------------------------------------------------

    def check(self) -> None:
        response = self._http.request("GET", "/api/v1/customers", params={"limit": 1})
        self._http.json(response)

    # -- helpers --------------------------------------------------------------------------------

    def _resource(self, entity: str) -> _Resource:
        return self._entity(self._resources, entity)

    def _written_already(self, entity: str, record_id: str, body: Record, current: Record) -> Record | None:
        """After a 412: the record as our write left it, or None when it does not hold what we sent."""
        stored = self.read(entity, record_id)
        if stored is None or not holds_values(stored, body):
            return None
        server_fields = self._resource(entity).info.server_fields
        expected = {**current, **body}
        if same_value(_without(stored, server_fields), _without(expected, server_fields)):
            return stored  # exactly what our write makes: the link stores its real version
        # Holds what we sent, and another writer's change besides. Answer the record as our write alone
        # left it, with the version we read: the next run then sees the newer version and carries the
        # other change over instead of taking it as already in sync.
        return expected

    def _normalised(self, since: str) -> str:
        try:
            return utc_z(parse_timestamp(since))
        except ValueError:
            raise ConnectorError(f"the cursor {since!r} is not an ISO 8601 datetime", connection=self.name) from None

    def _page(self, resource: _Resource, params: Mapping[str, str | int]) -> tuple[list[Record], str | None]:
        response = self._http.request("GET", resource.path, params=params)
        body = self._http.json(response)
        data = body.get("data") if isinstance(body, dict) else None
        next_cursor = body.get("next_cursor") if isinstance(body, dict) else None
        if (
            not isinstance(data, list)
            or not all(isinstance(item, dict) for item in data)
            or not (next_cursor is None or isinstance(next_cursor, str))
        ):
            raise self._malformed(resource, 'expected {"data": [records...], "next_cursor": "..." or null}')
        return data, next_cursor

    def _change(self, resource: _Resource, record: Record) -> Change:
        try:
            record_id = str(record["id"])
            modified = utc_z(parse_timestamp(str(record["updated_at"])))
        except (KeyError, ValueError) as exc:
            raise self._malformed(resource, f"a record needs id and an ISO 8601 updated_at ({exc})") from exc
        if record.get("deleted") is True:
            return Change(id=record_id, modified=modified, record=None, deleted=True)
        return Change(id=record_id, modified=modified, record=record)

    def _malformed(self, resource: _Resource, detail: str) -> PagingError:
        return PagingError(f"malformed page: {detail}", connection=self.name, method="GET", path=resource.path)

    def _record(self, response: httpx.Response) -> Record:
        body = self._http.json(response)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            raise ConnectorError(
                "the server's answer is not a record with an id",
                connection=self.name,
                method=response.request.method,
                path=response.request.url.path,
                status=response.status_code,
            )
        return body


def _without(record: Record, names: frozenset[str]) -> Record:
    return {key: value for key, value in record.items() if key not in names}


__all__ = ["SETTINGS_SCHEMA", "CustompmsConnector"]
