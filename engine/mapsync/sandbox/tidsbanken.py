"""The Tidsbanken emulator: OData-flavoured listing, client-chosen ids, server timestamps.

Implements /work/shared/contracts/tidsbanken-api.md: Avdeling (PATCH updates, UTC timestamps with Z),
Kunde and Prosjekt (PUT whole-record updates, Europe/Oslo timestamps with an offset).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from mapsync.errors import FieldError
from mapsync.sandbox._emulator import Emulator
from mapsync.sandbox._http import BadJsonError, HttpError, JsonObject, Request, Response
from mapsync.sandbox._index import KeysetIndex
from mapsync.sandbox._schema import EntitySchema
from mapsync.sandbox._time import format_utc_millis, from_micros, parse_aware_datetime, to_micros
from mapsync.sandbox.faults import Faults

OSLO = ZoneInfo("Europe/Oslo")
DEFAULT_API_KEY = "sandbox-tb-key"
DEFAULT_SUBSCRIPTION_KEY = "sandbox-subscription-key"
DEFAULT_TOP = 100
MAX_TOP = 500
SERVER_FIELDS = ("OpprettetDato", "SistEndretDato")

_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_MODIFIED_GT = re.compile(r"SistEndretDato\s+gt\s+(.+)", re.IGNORECASE)
_ID_EQ = re.compile(r"Id\s+eq\s+'((?:[^']|'')*)'", re.IGNORECASE)
_KEY_LOOKUP = re.compile(r"(?P<base>/.+)\('(?P<id>(?:[^']|'')*)'\)")


@dataclass(frozen=True)
class EntitySpec:
    """How one Tidsbanken entity set is reached and stamped."""

    name: str
    list_paths: tuple[str, ...]  # GET; the first one is the documented path
    write_path: str  # POST (and PUT for whole-record updates)
    update_method: str  # "PATCH" (to write_path/{Id}) or "PUT" (to write_path, Id in the body)
    utc_stamps: bool  # Avdeling: UTC with Z; the others: Europe/Oslo with an offset
    true_by_default: frozenset[str]
    schema: EntitySchema

    def format_stamp(self, micros: int) -> str:
        if self.utc_stamps:
            return format_utc_millis(micros)
        return from_micros(micros).astimezone(OSLO).isoformat(timespec="milliseconds")

    def default(self, name: str) -> Any:
        types = self.schema.types(name)
        if "null" in types:
            return None
        if "boolean" in types:
            return name in self.true_by_default
        return ""

    def body_properties(self) -> list[str]:
        return [name for name in self.schema.properties if name not in SERVER_FIELDS]


def _entity_specs() -> dict[str, EntitySpec]:
    return {
        "Avdeling": EntitySpec(
            "Avdeling", ("/ansatt/avdeling", "/ansatt/Avdeling"), "/ansatt/Avdeling", "PATCH",
            utc_stamps=True, true_by_default=frozenset({"Synlig"}),
            schema=EntitySchema("tidsbanken", "Avdeling"),
        ),
        "Kunde": EntitySpec(
            "Kunde", ("/prosjekt/Kunde",), "/prosjekt/Kunde", "PUT",
            utc_stamps=False, true_by_default=frozenset({"Aktiv"}),
            schema=EntitySchema("tidsbanken", "Kunde"),
        ),
        "Prosjekt": EntitySpec(
            "Prosjekt", ("/prosjekt/Prosjekt",), "/prosjekt/Prosjekt", "PUT",
            utc_stamps=False, true_by_default=frozenset(),
            schema=EntitySchema("tidsbanken", "Prosjekt"),
        ),
    }


def _bad_request(message: str) -> HttpError:
    return HttpError(400, {"error": message})


def _describe(problems: list[FieldError]) -> str:
    return "; ".join(str(problem) for problem in problems)


@dataclass(frozen=True)
class ListQuery:
    modified_after: int | None  # micros, exclusive
    record_id: str | None
    top: int
    skip: int


def parse_list_query(query: dict[str, str]) -> ListQuery:
    """$filter, $top and $skip of a listing; $select is accepted and ignored."""
    modified_after: int | None = None
    record_id: str | None = None
    text = query.get("$filter", "").strip()
    for raw_clause in _AND.split(text) if text else []:
        clause = raw_clause.strip()
        if match := _MODIFIED_GT.fullmatch(clause):
            moment = parse_aware_datetime(match.group(1).strip())
            if moment is None:
                raise _bad_request(
                    f"cannot read {match.group(1).strip()!r} as a datetime with a zone "
                    "(send the + of an offset as %2B)"
                )
            modified_after = to_micros(moment)
        elif match := _ID_EQ.fullmatch(clause):
            record_id = match.group(1).replace("''", "'")
        else:
            raise _bad_request(f"unsupported $filter clause: {clause!r}")
    top = _int_param(query, "$top", DEFAULT_TOP)
    if top > MAX_TOP:
        raise _bad_request(f"$top must be at most {MAX_TOP}")
    return ListQuery(modified_after, record_id, top, _int_param(query, "$skip", 0))


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"{name} must be a whole number") from None
    if value < 0:
        raise _bad_request(f"{name} must not be negative")
    return value


class _Table:
    """The records of one entity set and their (SistEndretDato, Id) index."""

    def __init__(self, spec: EntitySpec) -> None:
        self.spec = spec
        self.records: dict[str, JsonObject] = {}
        self.index = KeysetIndex()


class TidsbankenEmulator(Emulator):
    """The Tidsbanken API on 127.0.0.1, with direct access for tests ("as if a person used the UI")."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        subscription_key: str = DEFAULT_SUBSCRIPTION_KEY,
        faults: Faults | None = None,
        endless_paging: Iterable[str] = (),
    ) -> None:
        super().__init__(host=host, port=port, faults=faults)
        self.api_key = api_key
        self.subscription_key = subscription_key
        self._tables = {name: _Table(spec) for name, spec in _entity_specs().items()}
        # Ids left out of every listing (a flaky proxy, a server's paging bug), for tests of short listings;
        # a read by id (`('Id')` or `$filter=Id eq`) still answers.
        self.hidden: set[str] = set()
        # Entity sets whose listings never end (a broken server, for tests): every page served adds a
        # page of new records with later timestamps, so the next page is always full.
        self.endless_paging: set[str] = set(endless_paging)
        self._endless_count = 0

    # -- direct access (no HTTP, no faults) --------------------------------------------------------------

    def records(self, entity: str) -> list[JsonObject]:
        """Copies of every record, in listing order (SistEndretDato, then Id)."""
        table = self._table(entity)
        with self._lock:
            return [dict(table.records[record_id]) for record_id in table.index.ordered_ids()]

    def get(self, entity: str, record_id: str) -> JsonObject | None:
        table = self._table(entity)
        with self._lock:
            record = table.records.get(record_id)
            return dict(record) if record is not None else None

    def put(self, entity: str, record: JsonObject) -> JsonObject:
        """Insert or replace a whole record (missing properties get their defaults)."""
        table = self._table(entity)
        body = self._checked_body(table.spec, record, require=True, exc=ValueError)
        with self._lock:
            return dict(self._store_whole(table, body))

    def edit(self, entity: str, record_id: str, **changes: Any) -> JsonObject:
        table = self._table(entity)
        body = self._checked_body(table.spec, changes, require=False, exc=ValueError)
        if body.get("Id", record_id) != record_id:
            raise ValueError("edit cannot change the Id")
        with self._lock:
            if record_id not in table.records:
                raise KeyError(f"{table.spec.name} {record_id!r} does not exist")
            return dict(self._store_changes(table, record_id, body))

    def remove(self, entity: str, record_id: str) -> None:
        """Deleted in the UI: the record simply stops being listed (there is no delete endpoint)."""
        table = self._table(entity)
        with self._lock:
            if table.records.pop(record_id, None) is None:
                raise KeyError(f"{table.spec.name} {record_id!r} does not exist")
            table.index.discard(record_id)

    def load(self, entity: str, records: list[JsonObject]) -> None:
        """Bulk-load records that already carry their timestamps (seeding); one sort at the end."""
        table = self._table(entity)
        with self._lock:
            pairs = []
            for record in records:
                micros = to_micros(datetime.fromisoformat(record["SistEndretDato"]))
                table.records[record["Id"]] = dict(record)
                pairs.append((record["Id"], micros))
                self._clock.observe(micros)
            table.index.load(pairs)

    def _table(self, entity: str) -> _Table:
        for name, table in self._tables.items():
            if name.lower() == entity.lower():
                return table
        raise KeyError(f"unknown Tidsbanken entity {entity!r} (Avdeling, Kunde, Prosjekt)")

    # -- storing -----------------------------------------------------------------------------------------

    @staticmethod
    def _checked_body(
        spec: EntitySpec, body: JsonObject, *, require: bool, exc: type[Exception]
    ) -> JsonObject:
        """The body without server-set fields, after checking names and types against the schema."""
        body = {name: value for name, value in body.items() if name not in SERVER_FIELDS}
        problems = spec.schema.problems(body, require=require)
        if "Id" in body and isinstance(body["Id"], str) and not body["Id"]:
            problems.append(FieldError("Id", "must not be empty"))
        if problems:
            raise exc(f"{spec.name}: {_describe(problems)}")
        return body

    def _stamp(self, table: _Table, record: JsonObject, created: str | None) -> JsonObject:
        micros = self._clock.next()
        stamp = table.spec.format_stamp(micros)
        record["OpprettetDato"] = created or stamp
        record["SistEndretDato"] = stamp
        table.records[record["Id"]] = record
        table.index.put(record["Id"], micros)
        return record

    def _store_whole(self, table: _Table, body: JsonObject) -> JsonObject:
        spec = table.spec
        record = {name: body.get(name, spec.default(name)) for name in spec.body_properties()}
        previous = table.records.get(body["Id"])
        return self._stamp(table, record, previous["OpprettetDato"] if previous else None)

    def _store_changes(self, table: _Table, record_id: str, changes: JsonObject) -> JsonObject:
        previous = table.records[record_id]
        record = {name: changes.get(name, previous[name]) for name in table.spec.body_properties()}
        return self._stamp(table, record, previous["OpprettetDato"])

    # -- HTTP --------------------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        if request.header("tb-key") != self.api_key:
            return Response(401, {"error": "missing or wrong tb-key"})
        if request.header("Ocp-Apim-Subscription-Key") != self.subscription_key:
            return Response(401, {"error": "missing or wrong Ocp-Apim-Subscription-Key"})
        return None

    def route(self, request: Request) -> Response:
        for table in self._tables.values():
            response = self._route(table, request)
            if response is not None:
                return response
        return Response(404, {"error": f"no resource at {request.path}"})

    def _route(self, table: _Table, request: Request) -> Response | None:
        """The answer when the path belongs to this entity set, else None."""
        spec, path = table.spec, request.path
        if path in spec.list_paths or path == spec.write_path:
            return self._route_collection(table, request)
        if spec.update_method == "PATCH" and path.startswith(spec.write_path + "/"):
            if request.method != "PATCH":
                return _method_not_allowed(request.method, path)
            return self._patch(table, path.removeprefix(spec.write_path + "/"), request)
        match = _KEY_LOOKUP.fullmatch(path)
        if match and (match["base"] in spec.list_paths or match["base"] == spec.write_path):
            if request.method != "GET":
                return _method_not_allowed(request.method, path)
            return self._get_one(table, match["id"].replace("''", "'"))
        return None

    def _route_collection(self, table: _Table, request: Request) -> Response:
        spec, path, method = table.spec, request.path, request.method
        if method == "GET":
            return self._list(table, request)
        if method == "POST" and path == spec.write_path:
            return self._insert(table, request)
        if method == "PUT" and spec.update_method == "PUT" and path == spec.write_path:
            return self._replace(table, request)
        return _method_not_allowed(method, path)

    def _list(self, table: _Table, request: Request) -> Response:
        query = parse_list_query(request.query)
        with self._lock:
            if table.spec.name in self.endless_paging and query.record_id is None:
                self._add_endless_records(table, query.top)
            if query.record_id is not None:
                stamp = table.index.stamp(query.record_id)
                keep = stamp is not None and (query.modified_after is None or stamp > query.modified_after)
                ids = [query.record_id] if keep else []
                ids = ids[query.skip : query.skip + query.top]
            else:
                start = 0
                if query.modified_after is not None:
                    start = table.index.first_at_or_after(query.modified_after + 1)  # gt is strict
                start += query.skip
                ids = [record_id for _, record_id in table.index.slice(start, start + query.top)]
                if self.hidden:
                    ids = self._visible_ids(table, start - query.skip, query.skip, query.top)
            value = [dict(table.records[record_id]) for record_id in ids]
        # The address the client used (Host), so that the answer reads the same in process as on a socket.
        host = request.header("Host") or f"{self.host}:{self.port}"
        context = f"http://{host}/$metadata#{table.spec.name}"
        return Response(200, {"@odata.context": context, "value": value})

    def _add_endless_records(self, table: _Table, count: int) -> None:
        for _ in range(count):
            self._endless_count += 1
            number = self._endless_count
            self._store_whole(table, {"Id": f"ENDLESS-{number:06d}", "Navn": f"Endless {table.spec.name} {number}"})

    def _visible_ids(self, table: _Table, start: int, skip: int, top: int) -> list[str]:
        """A page of a listing that leaves the hidden records out, as if they were not there."""
        visible = (record_id for _, record_id in table.index.keys_from(start) if record_id not in self.hidden)
        return list(islice(visible, skip, skip + top))

    def _get_one(self, table: _Table, record_id: str) -> Response:
        with self._lock:
            record = table.records.get(record_id)
            if record is None:
                return Response(404, {"error": f"{table.spec.name} '{record_id}' not found"})
            return Response(200, dict(record))

    def _insert(self, table: _Table, request: Request) -> Response:
        body = _json_object(request)
        nulls = sorted(name for name, value in body.items() if value is None)
        if nulls:
            raise _bad_request(f"null values are not allowed in an insert (leave the key out): {nulls}")
        body = self._checked_body(table.spec, body, require=True, exc=_HttpBadRequest)
        self._check_refusal(table, body)
        with self._lock:
            if body["Id"] in table.records:
                return Response(409, {"error": f"{table.spec.name} '{body['Id']}' exists already"})
            return Response(201, dict(self._store_whole(table, body)))

    def _replace(self, table: _Table, request: Request) -> Response:
        body = self._checked_body(table.spec, _json_object(request), require=True, exc=_HttpBadRequest)
        self._check_refusal(table, body)
        with self._lock:
            if body["Id"] not in table.records:
                return Response(404, {"error": f"{table.spec.name} '{body['Id']}' not found"})
            return Response(200, dict(self._store_whole(table, body)))

    def _patch(self, table: _Table, record_id: str, request: Request) -> Response:
        body = self._checked_body(table.spec, _json_object(request), require=False, exc=_HttpBadRequest)
        if body.get("Id", record_id) != record_id:
            raise _bad_request("the Id in the body differs from the Id in the path")
        self._check_refusal(table, body)
        with self._lock:
            if record_id not in table.records:
                return Response(404, {"error": f"{table.spec.name} '{record_id}' not found"})
            return Response(200, dict(self._store_changes(table, record_id, body)))

    def _check_refusal(self, table: _Table, body: JsonObject) -> None:
        reason = self.refusal(table.spec.name, body)
        if reason is not None:
            raise _bad_request(reason)


class _HttpBadRequest(HttpError):
    """A 400 built from a message, so `_checked_body` can raise it like a ValueError."""

    def __init__(self, message: str) -> None:
        super().__init__(400, {"error": message})


def _json_object(request: Request) -> JsonObject:
    try:
        body = request.json()
    except BadJsonError as exc:
        raise _bad_request(str(exc)) from None
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _method_not_allowed(method: str, path: str) -> Response:
    return Response(405, {"error": f"{method} is not allowed on {path}"})


__all__ = ["DEFAULT_API_KEY", "DEFAULT_SUBSCRIPTION_KEY", "OSLO", "TidsbankenEmulator"]
