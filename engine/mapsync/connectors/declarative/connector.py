"""The one generic HTTP connector: executes any connector definition over one HttpClient per connection.

    connector = DeclarativeConnector("tidsbanken", shipped_definition("tidsbanken"), settings)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from mapsync.connectors._common import HttpBackedConnector
from mapsync.connectors._http_errors import server_message
from mapsync.connectors.base import Change, EntityInfo, Record
from mapsync.connectors.declarative.definition import Definition, EntityDefinition, ErrorShape
from mapsync.connectors.declarative.reading import Reader, ReadOptions, settings_overlap
from mapsync.connectors.declarative.requests import fill_settings, search, with_query
from mapsync.connectors.declarative.writing import Writer
from mapsync.connectors.http import HttpClient, HttpSettings
from mapsync.errors import FieldError


class DeclarativeConnector(HttpBackedConnector):
    """One connection to a system described by a definition. Thread-safe: its only shared state is the
    HttpClient (and the auth, which guards its own)."""

    def __init__(self, name: str, definition: Definition, settings: Mapping[str, Any], *,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.definition = definition
        self.system = definition.title
        merged = {**definition.defaults, **settings}  # the definition's defaults, overridden per connection
        http_settings = HttpSettings.from_settings(merged)
        self.page_size = http_settings.page_size
        self.max_pages = http_settings.max_pages
        self.concurrency = http_settings.concurrency  # writes in flight: the runner's worker count honours it
        fill = self._filler(merged)
        headers = {header: fill(value, f"connection.headers.{header}") for header, value in definition.headers.items()}
        secrets = [str(merged[key]) for key in definition.secret_settings if merged.get(key)]
        self._http = HttpClient(
            name, fill(definition.base_url, "connection.base_url"), headers=headers, settings=http_settings,
            auth_hint=definition.auth_hint, secrets=secrets, transport=transport, sleep=sleep,
            auth=self._auth(merged, transport, http_settings.timeout),
            describe_error=_error_reader(definition.errors),
        )
        self._reader = Reader(name, definition, self._http,
                              ReadOptions(self.page_size, self.max_pages, settings_overlap(merged)))
        self._writer = Writer(self._reader)
        self._check = with_query(definition.check.path,
                                 {k: fill(v, "connection.check") for k, v in definition.check.params.items()})

    def _filler(self, settings: Mapping[str, Any]) -> Callable[[str, str], str]:
        def fill(template: str, where: str) -> str:
            return fill_settings(template, settings, connection=self.name, where=where)

        return fill

    def _auth(self, settings: Mapping[str, Any], transport: httpx.BaseTransport | None, timeout: float
              ) -> httpx.Auth | None:
        if not self.definition.auth:
            return None
        from mapsync.connectors.auth import build_auth

        return build_auth(self.definition.auth, settings, transport=transport, connection=self.name, timeout=timeout)

    # -- the Connector Protocol -----------------------------------------------------------------

    def entities(self) -> Mapping[str, EntityInfo]:
        return {name: entity.info for name, entity in self.definition.entities.items()}

    def list_changes(self, entity: str, since: str | None) -> Iterator[Change]:
        return self._reader.list_changes(self._of(entity), since)

    def read(self, entity: str, record_id: str) -> Record | None:
        return self._reader.read(self._of(entity), record_id)

    def create(self, entity: str, record: Record, *, idempotency_key: str) -> Record:
        return self._writer.create(self._of(entity), record, idempotency_key)

    def update(self, entity: str, record_id: str, changes: Record, *, current: Record,
               version: str | int | None = None) -> Record:
        """`version`: the record's concurrency token remembered from an earlier listing or write, sent when
        `current` is {} instead of reading the record first (see Writer.update)."""
        return self._writer.update(self._of(entity), record_id, changes, current, version)

    def version_of(self, entity: str, record: Record | None) -> str | int | None:
        """The record's concurrency token as the definition's `concurrency.version` names it (None: none)."""
        return self._writer.version_of(self._of(entity), record)

    def delete(self, entity: str, record_id: str) -> None:
        self._writer.delete(self._of(entity), record_id)

    def check(self) -> None:
        self._http.json(self._http.request("GET", self._check))

    def _of(self, entity: str) -> EntityDefinition:
        return self._entity(self.definition.entities, entity)


def _error_reader(shape: ErrorShape | None) -> Callable[[httpx.Response], tuple[str, list[FieldError]]] | None:
    """How an error answer names what it refuses, as the definition's `errors:` says (None: the common shapes)."""
    if shape is None:
        return None

    def describe(response: httpx.Response) -> tuple[str, list[FieldError]]:
        text, fields = server_message(response)
        try:
            body = response.json() if response.content else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            return text, fields
        message = search(shape.message, body) if shape.message else None
        listed = search(shape.fields, body) if shape.fields else None
        if isinstance(listed, list):
            fields = [FieldError(str(item.get("field") or ""), str(item.get("message") or ""))
                      for item in listed if isinstance(item, dict)]
        return (message if isinstance(message, str) and message else text), fields

    return describe
