"""Listing and reading records as a definition says: the list request page by page, the incremental
filter with its overlap, tombstones, and one record by its id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from mapsync.connectors._paging import PageCap, parse_timestamp, utc_z
from mapsync.connectors.base import Change, ChangeListing, Record
from mapsync.connectors.declarative.definition import Definition, EntityDefinition
from mapsync.connectors.declarative.pagers import Key, make_pager
from mapsync.connectors.declarative.requests import (
    fill_path,
    fill_value,
    format_timestamp,
    search,
    with_query,
    without_annotations,
)
from mapsync.connectors.http import HttpClient
from mapsync.errors import ConnectorError, NotFoundError, PagingError, RefusedError

UNUSABLE_SEGMENTS = frozenset({"", ".", ".."})
ONE_MS = timedelta(milliseconds=1)
CLOCK_MARGIN = timedelta(seconds=1)


def server_time(response: httpx.Response) -> datetime | None:
    """The server's clock when it answered (its `Date` header), or None without a readable one."""
    try:
        moment = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class ReadOptions:
    page_size: int
    max_pages: int
    overlap: float | None  # the connection's `overlap` setting (seconds), over each entity's own


class Reader:
    """The reading half of a declarative connector. Thread-safe: it keeps no state between calls."""

    def __init__(self, name: str, definition: Definition, http: HttpClient, options: ReadOptions) -> None:
        self.name = name
        self.definition = definition
        self.http = http
        self.options = options

    # -- listing --------------------------------------------------------------------------------

    def list_changes(self, entity: EntityDefinition, since: str | None) -> ChangeListing:
        return ChangeListing(lambda listing: self._pages(entity, since, listing))

    def _pages(self, entity: EntityDefinition, since: str | None, listing: ChangeListing) -> Iterator[Change]:
        spec = entity.listing
        cap = PageCap(self.options.max_pages, entity.info.name, connection=self.name, path=spec.path)
        pager = make_pager(spec.paging, dict(spec.params), size=self.options.page_size,
                           after=self._lower_bound(entity, since), window=lambda after: self._window(entity, after),
                           base_url=self.http.base_url, connection=self.name, path=spec.path)
        served_at: datetime | None = None
        latest: datetime | None = None
        while not pager.finished:
            cap.next_page()
            url, params = pager.next_request()
            response = self.http.request("GET", url or with_query(spec.path, params))
            if served_at is None:
                served_at = server_time(response)
            body = self.http.json(response)
            records = self._records(entity, body, response)
            seen = [self._change(entity, record) for record in records]
            changes = [change for change, _ in seen]
            keys: list[Key] = [(change.id, moment) for change, moment in seen]
            for _, moment in keys:
                latest = moment if latest is None or moment > latest else latest
            for index in pager.accept(body, response, keys):
                yield changes[index]
        if latest is not None:
            listing.resume = utc_z(self._resume(entity, latest, served_at))

    def _overlap(self, entity: EntityDefinition) -> timedelta:
        """The overlap window of the entity's incremental filter (the connection's `overlap` setting first)."""
        incremental = entity.listing.incremental
        if incremental is None:
            return timedelta(0)
        return timedelta(seconds=incremental.overlap if self.options.overlap is None else self.options.overlap)

    def _reach_back(self, entity: EntityDefinition) -> timedelta:
        """How far before `since` a listing starts: the overlap window, at least 1 ms for a strict filter (`gt`),
        which would otherwise miss a record changed at the cursor's own instant."""
        incremental = entity.listing.incremental
        overlap = self._overlap(entity)
        return max(overlap, ONE_MS) if incremental is not None and incremental.strict else overlap

    def _resume(self, entity: EntityDefinition, latest: datetime, served_at: datetime | None) -> datetime:
        """The `since` of the next listing, which reaches back `_reach_back` from it.

        The overlap window is there for a record committed late with an earlier timestamp, and such a
        record carries no timestamp older than one window before the moment it became visible. So what
        changed more than a window before the server answered the first page (its clock: the `Date` header)
        was all there to be listed: the next listing need reach back only to the last record listed, or
        to one window before that answer, whichever is earlier. Without a `Date` the cursor stays at the
        last record and the whole window is listed again.
        """
        incremental = entity.listing.incremental
        if incremental is None or served_at is None or not self._overlap(entity):
            return latest
        tick = ONE_MS if incremental.strict else timedelta(0)
        # A `Date` has whole seconds and may be stamped after the page was read: a second's margin.
        return min(latest + self._reach_back(entity) - tick, served_at - CLOCK_MARGIN)

    def _lower_bound(self, entity: EntityDefinition, since: str | None) -> datetime | None:
        incremental = entity.listing.incremental
        if since is None or incremental is None:
            return None
        try:
            cursor = parse_timestamp(since)
        except ValueError:
            raise ConnectorError(f"the cursor {since!r} is not an ISO 8601 datetime", connection=self.name) from None
        return cursor - self._reach_back(entity)

    def _window(self, entity: EntityDefinition, after: datetime | None) -> dict[str, str]:
        incremental = entity.listing.incremental
        if after is None or incremental is None:
            return {}
        moment = format_timestamp(after, incremental.timestamp)
        return {incremental.param: fill_value(incremental.value, since=moment)}

    def _records(self, entity: EntityDefinition, body: Any, response: httpx.Response) -> list[Record]:
        selector = entity.listing.records
        records = search(selector, body)
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
            raise PagingError(f"malformed page: expected a list of records at `{selector}`", connection=self.name,
                              method="GET", path=entity.listing.path, status=response.status_code)
        return [without_annotations(record, self.definition.annotations) for record in records]

    def _change(self, entity: EntityDefinition, record: Record) -> tuple[Change, datetime]:
        """The record as a change, and its change time (for the pager), parsed once."""
        key, modified = entity.info.key, entity.modified
        try:
            record_id = record[key]
            if not isinstance(record_id, str | int) or isinstance(record_id, bool):
                raise ValueError(f"{key} is {type(record_id).__name__}")
            moment = parse_timestamp(str(record[modified]))
        except (KeyError, ValueError) as exc:
            raise PagingError(f"malformed record in page: needs {key} and an ISO 8601 {modified} ({exc})",
                              connection=self.name, method="GET", path=entity.listing.path) from exc
        if entity.listing.deleted and search(entity.listing.deleted, record):
            return Change(id=str(record_id), modified=utc_z(moment), record=None, deleted=True), moment
        return Change(id=str(record_id), modified=utc_z(moment), record=record), moment

    # -- one record -----------------------------------------------------------------------------

    def read(self, entity: EntityDefinition, record_id: str) -> Record | None:
        read = entity.read
        params = {key: fill_value(value, record_id=record_id) for key, value in read.params.items()}
        if read.by_list:
            path = entity.listing.path
            response = self.http.request("GET", with_query(path, params))
            found = self._records(entity, self.http.json(response), response)
            return found[0] if found else None
        path = self.item_path("GET", read.path or entity.listing.path, entity, record_id)
        try:
            response = self.http.request("GET", with_query(path, params))
        except NotFoundError:
            return None
        return self.record_from(response, read.record) or None

    def record_from(self, response: httpx.Response, selector: str | None) -> Record:
        """The record an answer carries ({} when it carries none), its annotations dropped."""
        if not response.content:
            return {}
        record = search(selector, self.http.json(response))
        return without_annotations(record, self.definition.annotations) if isinstance(record, dict) else {}

    def item_path(self, method: str, template: str, entity: EntityDefinition, record_id: str) -> str:
        """The path of one record; refused before any request when the id cannot be one path segment (a `.`
        or `..` would be resolved away, and an empty id names the collection)."""
        if "{id" in template and record_id in UNUSABLE_SEGMENTS:
            raise RefusedError(f"{entity.info.name} id {record_id!r} cannot be used in a URL path",
                               connection=self.name, method=method, path=template.split("{", 1)[0].rstrip("/("))
        return fill_path(template, record_id)


def settings_overlap(settings: Mapping[str, Any]) -> float | None:
    value = settings.get("overlap")
    return None if value is None else float(value)
