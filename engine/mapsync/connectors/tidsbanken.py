"""The Tidsbanken connector: an OData-flavoured REST API (see contracts/tidsbanken-api.md).

Ids are chosen by the client, so a create is made idempotent by choosing the Id up front: a retry that
meets `409` finds the record its earlier attempt stored, and takes it as ours only when it holds every
value that was sent (otherwise the Id belongs to another record: a real conflict). Listing pages by
timestamp keyset rather than plain `$skip`, so that records modified during a scan are not lost (see
`_paging.KeysetPaging`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx

from mapsync.connectors import load_entity_info, register
from mapsync.connectors._common import HttpBackedConnector, holds_values
from mapsync.connectors._paging import KeysetPaging, PageCap, filter_time, parse_timestamp, utc_z
from mapsync.connectors.base import Change, EntityInfo, Record
from mapsync.connectors.http import HTTP_SETTINGS_PROPERTIES
from mapsync.errors import ConflictError, ConnectorError, NotFoundError, PagingError

MODIFIED = "SistEndretDato"
DEFAULT_OVERLAP_SECONDS = 60.0

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tidsbanken connection",
    "type": "object",
    "properties": {
        "type": {"const": "tidsbanken"},
        "base_url": {"type": "string", "minLength": 1, "description": "e.g. https://api.tidsbanken.net"},
        "api_key": {"type": "string", "minLength": 1, "description": "the tb-key header"},
        "subscription_key": {"type": "string", "minLength": 1, "description": "Ocp-Apim-Subscription-Key"},
        **HTTP_SETTINGS_PROPERTIES,
        # Keyset paging re-reads the last record of a page to notice records shifting mid-scan: that
        # record must fit on a page with at least one other.
        "page_size": {**HTTP_SETTINGS_PROPERTIES["page_size"], "minimum": 2},
        "overlap": {
            "type": "number",
            "minimum": 0,
            "description": "Seconds an incremental read reaches back before its cursor.",
        },
    },
    "required": ["type", "base_url", "api_key", "subscription_key"],
    "additionalProperties": False,
}

AUTH_HINT = (
    "check the connection's api_key and subscription_key settings "
    "(TIDSBANKEN_API_KEY and TIDSBANKEN_SUBSCRIPTION_KEY in the sample mapsync.yaml)"
)


@dataclass(frozen=True)
class _EntitySet:
    info: EntityInfo
    list_path: str  # GET, also the lookup by `$filter=Id eq ...`
    insert_path: str  # POST
    update_style: Literal["patch", "put"]  # PATCH <path>/{Id} with the changes, or PUT of the whole record
    update_path: str
    key_path: bool = False  # has a `<path>('{Id}')` lookup


def _entity_sets() -> dict[str, _EntitySet]:
    return {
        "Avdeling": _EntitySet(
            load_entity_info("tidsbanken", "avdeling.json"),
            list_path="/ansatt/avdeling",
            insert_path="/ansatt/Avdeling",
            update_style="patch",
            update_path="/ansatt/Avdeling",
        ),
        "Kunde": _EntitySet(
            load_entity_info("tidsbanken", "kunde.json"),
            list_path="/prosjekt/Kunde",
            insert_path="/prosjekt/Kunde",
            update_style="put",
            update_path="/prosjekt/Kunde",
            key_path=True,
        ),
        "Prosjekt": _EntitySet(
            load_entity_info("tidsbanken", "prosjekt.json"),
            list_path="/prosjekt/Prosjekt",
            insert_path="/prosjekt/Prosjekt",
            update_style="put",
            update_path="/prosjekt/Prosjekt",
        ),
    }


def odata_literal(value: str) -> str:
    """A string literal for an OData filter: quoted, with a `'` inside doubled."""
    return "'" + value.replace("'", "''") + "'"


@register("tidsbanken")
class TidsbankenConnector(HttpBackedConnector):
    """One connection to Tidsbanken. Thread-safe: its only shared state is the HttpClient."""

    system = "Tidsbanken"

    SETTINGS_SCHEMA = SETTINGS_SCHEMA
    AUTH_HINT = AUTH_HINT

    def __init__(self, name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.overlap = timedelta(seconds=float(settings.get("overlap", DEFAULT_OVERLAP_SECONDS)))
        super().__init__(name, settings, transport=transport, sleep=sleep)
        self._sets = _entity_sets()

    # -- reading --------------------------------------------------------------------------------

    def entities(self) -> Mapping[str, EntityInfo]:
        return {name: entity_set.info for name, entity_set in self._sets.items()}

    def _credentials(self, settings: Mapping[str, Any]) -> tuple[dict[str, str], Sequence[str]]:
        api_key, subscription_key = str(settings["api_key"]), str(settings["subscription_key"])
        headers = {"tb-key": api_key, "Ocp-Apim-Subscription-Key": subscription_key, "x-api-version": "3.0"}
        return headers, (api_key, subscription_key)

    def list_changes(self, entity: str, since: str | None) -> Iterator[Change]:
        entity_set = self._set(entity)
        pager = KeysetPaging(self.page_size, self._lower_bound(since), connection=self.name, path=entity_set.list_path)
        cap = PageCap(self.max_pages, entity, connection=self.name, path=entity_set.list_path)
        while not pager.finished:
            cap.next_page()
            request = pager.next_request()
            params: dict[str, str | int] = {}
            if request.after is not None:
                params["$filter"] = f"{MODIFIED} gt {filter_time(request.after)}"
            params.update({"$top": self.page_size, "$skip": request.skip, "$select": "*"})
            records = self._list_page(entity_set, params)
            keys = [self._page_key(entity_set, record) for record in records]
            for index in pager.accept(keys):
                record_id, modified = keys[index]
                yield Change(id=record_id, modified=utc_z(modified), record=records[index])

    def read(self, entity: str, record_id: str) -> Record | None:
        entity_set = self._set(entity)
        if entity_set.key_path:
            path = f"{entity_set.list_path}({quote(odata_literal(record_id), safe=_QUOTE_SAFE)})"
            try:
                response = self._http.request("GET", path)
            except NotFoundError:
                return None
            return _record_from(self._http.json(response)) or None
        params = {"$filter": f"Id eq {odata_literal(record_id)}", "$select": "*"}
        found = self._list_page(entity_set, params)
        return found[0] if found else None

    # -- writing --------------------------------------------------------------------------------

    def create(self, entity: str, record: Record, *, idempotency_key: str) -> Record:
        entity_set = self._set(entity)
        record_id = str(record.get(entity_set.info.key) or idempotency_key)
        body = {
            key: value
            for key, value in record.items()
            if value is not None and key not in entity_set.info.server_fields  # the API refuses nulls
        }
        body[entity_set.info.key] = record_id
        if entity_set.update_style == "patch":
            # Its updates put the Id in the path: never create a record that could not be written again.
            self._item_path("POST", entity_set.update_path, entity, record_id)
        try:
            response = self._http.request("POST", entity_set.insert_path, json=body)
        except ConflictError:
            # The Id exists: our own earlier attempt, stored before its answer was lost, if it holds every
            # value we sent; any other record with this Id is a real conflict, never taken as ours.
            stored = self.read(entity, record_id)
            if stored is None or not holds_values(stored, body):
                raise
            return stored
        return self._stored(entity, record_id, response)

    def update(self, entity: str, record_id: str, changes: Record, *, current: Record) -> Record:
        entity_set = self._set(entity)
        info = entity_set.info
        if entity_set.update_style == "patch":
            path = self._item_path("PATCH", entity_set.update_path, entity, record_id)
            body = {k: v for k, v in changes.items() if k not in info.server_fields and k != info.key}
            response = self._http.request("PATCH", path, json=body)
        else:
            merged = {**current, **changes}
            # Whole-record PUT: only the entity's own writable properties. A server may list more than it
            # accepts back (computed or expanded fields), and the API answers 400 to unknown names.
            known = info.schema.get("properties", {})
            body = {k: v for k, v in merged.items() if k in known and k not in info.server_fields}
            body[info.key] = record_id
            response = self._http.request("PUT", entity_set.update_path, json=body)
        return self._stored(entity, record_id, response)

    def delete(self, entity: str, record_id: str) -> None:
        entity_set = self._set(entity)
        raise ConnectorError(
            "Tidsbanken has no delete: remove the record in Tidsbanken's UI, or let the mapping's delete "
            "policy unlink it",
            connection=self.name,
            method="DELETE",
            path=self._item_path("DELETE", entity_set.update_path, entity, record_id),
        )

    # -- housekeeping ---------------------------------------------------------------------------

    def check(self) -> None:
        response = self._http.request("GET", f"/ansatt/avdeling?{odata_query({'$top': 1})}")
        self._http.json(response)

    # -- helpers --------------------------------------------------------------------------------

    def _set(self, entity: str) -> _EntitySet:
        return self._entity(self._sets, entity)

    def _lower_bound(self, since: str | None) -> datetime | None:
        if since is None:
            return None
        try:
            cursor = parse_timestamp(since)
        except ValueError:
            raise ConnectorError(f"the cursor {since!r} is not an ISO 8601 datetime", connection=self.name) from None
        # `gt` is strict: without any overlap a record changed at the cursor's own instant would be
        # missed, so the window always reaches back at least one millisecond.
        return cursor - max(self.overlap, timedelta(milliseconds=1))

    def _list_page(self, entity_set: _EntitySet, params: Mapping[str, str | int]) -> list[Record]:
        response = self._http.request("GET", f"{entity_set.list_path}?{odata_query(params)}")
        body = self._http.json(response)
        values = body.get("value") if isinstance(body, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise PagingError(
                'malformed page: expected {"value": [records...]}',
                connection=self.name,
                method="GET",
                path=entity_set.list_path,
                status=response.status_code,
            )
        return values

    def _page_key(self, entity_set: _EntitySet, record: Record) -> tuple[str, datetime]:
        key = entity_set.info.key
        try:
            return str(record[key]), parse_timestamp(str(record[MODIFIED]))
        except (KeyError, ValueError) as exc:
            raise PagingError(
                f"malformed record in page: needs {key} and an ISO 8601 {MODIFIED} ({exc})",
                connection=self.name,
                method="GET",
                path=entity_set.list_path,
            ) from exc

    def _stored(self, entity: str, record_id: str, response: httpx.Response) -> Record:
        """The stored record from a write's answer; read back if the server sent no body."""
        if response.content:
            record = _record_from(self._http.json(response))
            if record:
                return record
        stored = self.read(entity, record_id)
        if stored is None:
            raise ConnectorError(
                f"the write succeeded but {entity} {record_id!r} cannot be read back",
                connection=self.name,
                method=response.request.method,
                path=response.request.url.path,
                status=response.status_code,
            )
        return stored


_QUOTE_SAFE = "'"  # keep the literal's quotes readable; everything else in an Id is percent-encoded


def odata_query(params: Mapping[str, str | int]) -> str:
    """A query string as the contract writes it: `$filter=SistEndretDato%20gt%20...%2B02:00&$top=100`.

    Option names keep their `$`, a space travels as %20 and a `+` as %2B: a server that decodes with or
    without form rules (where `+` would mean a space) reads the same filter.
    """
    return "&".join(f"{key}={quote(str(value), safe=_QUERY_SAFE)}" for key, value in params.items())


_QUERY_SAFE = "'*:(),"  # OData's literal quotes and punctuation stay readable; everything else is encoded


def _is_annotation(key: str) -> bool:
    return key.startswith("@odata.")


def _record_from(body: Any) -> Record:
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if not _is_annotation(k)}


__all__ = ["SETTINGS_SCHEMA", "TidsbankenConnector", "odata_literal", "odata_query"]
