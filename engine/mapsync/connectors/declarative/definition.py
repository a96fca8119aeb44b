"""The typed model of a connector definition (schemas/connector.schema.json), built from a document the
schema has accepted. Nothing here reads files or sends requests: see `loading` and `connector`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mapsync.connectors.base import EntityInfo

PagingKind = Literal["none", "offset", "page_number", "cursor", "next_link", "keyset"]


@dataclass(frozen=True)
class TimestampFormat:
    """How a moment is written into a query parameter."""

    format: Literal["iso8601", "unix", "unix_ms"] = "iso8601"
    zone: Literal["utc", "original"] = "utc"
    precision: Literal["seconds", "milliseconds", "auto"] = "milliseconds"


@dataclass(frozen=True)
class Paging:
    kind: PagingKind = "none"
    size_param: str | None = None
    offset_param: str | None = None
    page_param: str | None = None
    first_page: int = 1
    cursor_param: str | None = None
    next: str | None = None  # JMESPath on the body: the next cursor, or the next link
    max_size: int | None = None


@dataclass(frozen=True)
class Incremental:
    param: str
    value: str = "{since}"
    strict: bool = False
    timestamp: TimestampFormat = field(default_factory=TimestampFormat)
    overlap: float = 0.0  # seconds


@dataclass(frozen=True)
class Listing:
    path: str
    records: str  # JMESPath on the body
    params: Mapping[str, str] = field(default_factory=dict)
    paging: Paging = field(default_factory=Paging)
    incremental: Incremental | None = None
    deleted: str | None = None  # JMESPath on a record: truthy for a tombstone


@dataclass(frozen=True)
class Read:
    path: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    by_list: bool = False
    record: str | None = None


@dataclass(frozen=True)
class Create:
    path: str
    method: str = "POST"
    client_ids: bool = False
    idempotency_header: str | None = None
    omit_nulls: bool = False
    record: str | None = None


@dataclass(frozen=True)
class Update:
    method: str
    path: str
    whole: bool = False
    carry_schema: bool = True
    id_in_body: bool = False
    record: str | None = None


@dataclass(frozen=True)
class Delete:
    path: str
    method: str = "DELETE"


@dataclass(frozen=True)
class Concurrency:
    version: str  # JMESPath on a record
    header: str | None = None
    body_field: str | None = None


@dataclass(frozen=True)
class EntityDefinition:
    info: EntityInfo
    modified: str  # the property holding the last-modified timestamp (the schema's x-modified)
    listing: Listing
    read: Read
    create: Create | None = None
    update: Update | None = None
    delete: Delete | None = None
    concurrency: Concurrency | None = None


@dataclass(frozen=True)
class ErrorShape:
    message: str | None = None
    fields: str | None = None


@dataclass(frozen=True)
class Check:
    path: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Definition:
    """A system as its definition file describes it."""

    name: str
    title: str
    file: str  # where it was read from, for messages
    settings: Mapping[str, Any]  # setting name -> JSON Schema
    required: tuple[str, ...]
    base_url: str
    headers: Mapping[str, str]
    auth: Mapping[str, Any] | None
    auth_hint: str
    check: Check
    defaults: Mapping[str, Any]
    errors: ErrorShape | None
    annotations: tuple[str, ...]
    entities: Mapping[str, EntityDefinition]

    @property
    def secret_settings(self) -> tuple[str, ...]:
        return tuple(name for name, schema in self.settings.items() if schema.get("x-secret") is True)


# -- from the validated document ---------------------------------------------------------------------

def _text_params(raw: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(key): _text(value) for key, value in (raw or {}).items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def paging_from(raw: Mapping[str, Any] | None) -> Paging:
    if not raw:
        return Paging()
    return Paging(kind=raw["kind"], size_param=raw.get("size_param"), offset_param=raw.get("offset_param"),
                  page_param=raw.get("page_param"), first_page=int(raw.get("first_page", 1)),
                  cursor_param=raw.get("cursor_param"), next=raw.get("next"), max_size=raw.get("max_size"))


def incremental_from(raw: Mapping[str, Any] | None) -> Incremental | None:
    if not raw:
        return None
    stamp = raw.get("timestamp") or {}
    return Incremental(
        param=raw["param"], value=raw.get("value", "{since}"), strict=raw.get("comparison") == "strict",
        timestamp=TimestampFormat(stamp.get("format", "iso8601"), stamp.get("zone", "utc"),
                                  stamp.get("precision", "milliseconds")),
        overlap=float(raw.get("overlap", 0)),
    )


def listing_from(raw: Mapping[str, Any]) -> Listing:
    return Listing(path=raw["path"], records=raw["records"], params=_text_params(raw.get("params")),
                   paging=paging_from(raw.get("paging")), incremental=incremental_from(raw.get("incremental")),
                   deleted=raw.get("deleted"))


def read_from(raw: Mapping[str, Any] | None, listing: Listing) -> Read:
    if not raw:  # the list request filtered by nothing cannot find one record: read by path is required then
        return Read(path=f"{listing.path}/{{id}}")
    return Read(path=raw.get("path"), params=_text_params(raw.get("params")), by_list=raw.get("by") == "list",
                record=raw.get("record"))


def create_from(raw: Mapping[str, Any] | None) -> Create | None:
    if not raw:
        return None
    return Create(path=raw["path"], method=raw.get("method", "POST"), client_ids=raw.get("ids") == "client",
                  idempotency_header=raw.get("idempotency_header"), omit_nulls=bool(raw.get("omit_nulls", False)),
                  record=raw.get("record"))


def update_from(raw: Mapping[str, Any] | None) -> Update | None:
    if not raw:
        return None
    return Update(method=raw["method"], path=raw["path"], whole=raw.get("body") == "whole",
                  carry_schema=raw.get("carry", "schema") == "schema", id_in_body=bool(raw.get("id_in_body", False)),
                  record=raw.get("record"))


def delete_from(raw: Mapping[str, Any] | None) -> Delete | None:
    return Delete(path=raw["path"], method=raw.get("method", "DELETE")) if raw else None


def concurrency_from(raw: Mapping[str, Any] | None) -> Concurrency | None:
    if not raw:
        return None
    return Concurrency(version=raw["version"], header=raw.get("header"), body_field=raw.get("body_field"))


def entity_from(name: str, raw: Mapping[str, Any], schema: Mapping[str, Any]) -> EntityDefinition:
    delete = delete_from(raw.get("delete"))
    info = EntityInfo(name=name, key=str(schema["x-key"]), schema=schema, can_delete=delete is not None,
                      server_fields=frozenset(schema.get("x-server-fields", ())))
    listing = listing_from(raw["list"])
    return EntityDefinition(info=info, modified=str(schema["x-modified"]), listing=listing,
                            read=read_from(raw.get("read"), listing), create=create_from(raw.get("create")),
                            update=update_from(raw.get("update")), delete=delete,
                            concurrency=concurrency_from(raw.get("concurrency")))


def definition_from(data: Mapping[str, Any], file: str, schemas: Mapping[str, Mapping[str, Any]]) -> Definition:
    """The model of a document already checked; `schemas` holds each entity's JSON Schema."""
    connection = data.get("connection") or {}
    entities = {name: entity_from(name, raw, schemas[name]) for name, raw in data["entities"].items()}
    settings = data.get("settings") or {}
    check_raw = connection.get("check")
    if check_raw:
        check = Check(check_raw["path"], _text_params(check_raw.get("params")))
    else:
        first = next(iter(entities.values())).listing
        size = first.paging.size_param
        check = Check(first.path, {size: "1"} if size else {})
    errors = data.get("errors")
    return Definition(
        name=data["name"], title=data.get("title") or data["name"].capitalize(), file=file,
        settings=dict(settings.get("properties") or {}), required=tuple(settings.get("required") or ()),
        base_url=connection.get("base_url", "${base_url}"), headers=dict(connection.get("headers") or {}),
        auth=connection.get("auth"), auth_hint=connection.get("auth_hint", ""), check=check,
        defaults=dict(data.get("defaults") or {}),
        errors=ErrorShape(errors.get("message"), errors.get("fields")) if errors else None,
        annotations=tuple(data.get("annotations") or ()), entities=entities,
    )
