"""The Custompms emulator: a plain JSON REST API with keyset cursors, versions, tombstones and
idempotency keys. Implements /work/shared/contracts/custompms-api.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mapsync.errors import FieldError
from mapsync.sandbox._emulator import Emulator
from mapsync.sandbox._http import BadJsonError, HttpError, JsonObject, Request, Response
from mapsync.sandbox._index import KeysetIndex
from mapsync.sandbox._schema import EntitySchema
from mapsync.sandbox._time import format_utc_millis, parse_aware_datetime, to_micros
from mapsync.sandbox.faults import Faults

DEFAULT_TOKEN = "sandbox-pms-token"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
PREFIX = "/api/v1/"
ADDRESS_FIELDS = ("postal_address", "delivery_address")
BEFORE_EVERY_KEY = (-1, "")  # a cursor position that sorts before every record


class InvalidBodyError(ValueError):
    """A body that Custompms refuses; carries every field error (a 422 over HTTP)."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


@dataclass(frozen=True)
class ResourceSpec:
    name: str  # "customers" / "projects"
    id_prefix: str  # "c-" / "p-"
    schema: EntitySchema
    defaults: dict[str, Any]


def _resource_specs() -> dict[str, ResourceSpec]:
    return {
        "customers": ResourceSpec(
            "customers", "c-", EntitySchema("custompms", "Customer"),
            defaults={"kind": "customer", "active": True},
        ),
        "projects": ResourceSpec(
            "projects", "p-", EntitySchema("custompms", "Project"),
            defaults={"closed": False, "internal": False},
        ),
    }


class _Collection:
    """Live records, tombstones, the (updated_at, id) index over both, and idempotency keys."""

    def __init__(self, spec: ResourceSpec) -> None:
        self.spec = spec
        self.live: dict[str, JsonObject] = {}
        self.tombstones: dict[str, JsonObject] = {}
        self.index = KeysetIndex()
        self.idempotency: dict[str, str] = {}  # Idempotency-Key -> id
        self.first_answers: dict[str, JsonObject] = {}  # id -> the record as first created
        self.next_number = 1

    def item(self, record_id: str) -> JsonObject:
        return self.live.get(record_id) or self.tombstones[record_id]


def encode_cursor(key: tuple[int, str], serial: int = 0) -> str:
    """The position after `key`; a `serial` (endless paging only) makes every cursor a fresh one."""
    fields: list[int | str] = [key[0], key[1], serial] if serial else [key[0], key[1]]
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, record_id, *_serial = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise HttpError(400, {"error": "malformed cursor"}) from exc
    if not isinstance(micros, int) or not isinstance(record_id, str):
        raise HttpError(400, {"error": "malformed cursor"})
    return micros, record_id


@dataclass(frozen=True)
class ListQuery:
    since: int | None  # micros, inclusive
    limit: int
    after: tuple[int, str] | None
    include_deleted: bool


def parse_list_query(query: dict[str, str]) -> ListQuery:
    since = None
    if "updated_since" in query:
        moment = parse_aware_datetime(query["updated_since"])
        if moment is None:
            raise HttpError(400, {"error": "updated_since must be an ISO 8601 datetime with a zone"})
        since = to_micros(moment)
    limit = DEFAULT_LIMIT
    if "limit" in query:
        try:
            limit = int(query["limit"])
        except ValueError:
            raise HttpError(400, {"error": "limit must be a whole number"}) from None
        if not 1 <= limit <= MAX_LIMIT:
            raise HttpError(400, {"error": f"limit must be between 1 and {MAX_LIMIT}"})
    after = decode_cursor(query["cursor"]) if query.get("cursor") else None
    include_deleted = query.get("include_deleted", "false").lower() in ("true", "1", "yes")
    return ListQuery(since, limit, after, include_deleted)


class CustompmsEmulator(Emulator):
    """The Custompms API on 127.0.0.1, with direct access for tests ("as if a person used the UI")."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        faults: Faults | None = None,
        endless_paging: Iterable[str] = (),
    ) -> None:
        super().__init__(host=host, port=port, faults=faults)
        self.token = token
        self._collections = {name: _Collection(spec) for name, spec in _resource_specs().items()}
        # Resources whose listings never end (a broken server, for tests): every cursor is a fresh one,
        # and the last page answers one that starts the listing over, so `next_cursor` is never null.
        self.endless_paging: set[str] = set(endless_paging)
        self._cursor_serial = 0

    # -- direct access (no HTTP, no faults, no refuse predicate) -----------------------------------------

    def records(self, resource: str, include_deleted: bool = False) -> list[JsonObject]:
        """Copies in listing order (updated_at, then id); tombstones only when asked."""
        collection = self._collection(resource)
        with self._lock:
            ids = collection.index.ordered_ids()
            if not include_deleted:
                ids = [record_id for record_id in ids if record_id in collection.live]
            return [_copy(collection.item(record_id)) for record_id in ids]

    def get(self, resource: str, record_id: str) -> JsonObject | None:
        collection = self._collection(resource)
        with self._lock:
            record = collection.live.get(record_id)
            return _copy(record) if record is not None else None

    def create(self, resource: str, body: JsonObject) -> JsonObject:
        """Create a record as the UI would; raises InvalidBodyError (a ValueError) on a bad body."""
        collection = self._collection(resource)
        with self._lock:
            self._raise_problems(collection, body, creating=True)
            return _copy(self._insert(collection, body))

    def edit(self, resource: str, record_id: str, **changes: Any) -> JsonObject:
        collection = self._collection(resource)
        with self._lock:
            if record_id not in collection.live:
                raise KeyError(f"{resource} {record_id!r} does not exist")
            self._raise_problems(collection, changes, creating=False)
            return _copy(self._update(collection, record_id, changes))

    def delete(self, resource: str, record_id: str) -> None:
        collection = self._collection(resource)
        with self._lock:
            if record_id not in collection.live:
                raise KeyError(f"{resource} {record_id!r} does not exist")
            self._bury(collection, record_id)

    def _collection(self, resource: str) -> _Collection:
        try:
            return self._collections[resource]
        except KeyError:
            raise KeyError(f"unknown Custompms resource {resource!r} (customers, projects)") from None

    # -- validation --------------------------------------------------------------------------------------

    def _problems(self, collection: _Collection, body: JsonObject, *, creating: bool) -> list[FieldError]:
        schema = collection.spec.schema
        problems = [
            FieldError(name, "is set by the server") for name in body if name in schema.server_fields
        ]
        client_body = {name: value for name, value in body.items() if name not in schema.server_fields}
        problems += schema.problems(client_body, require=creating)
        if collection.spec.name == "projects":
            problems += self._reference_problems(client_body)
        return problems

    def _reference_problems(self, body: JsonObject) -> list[FieldError]:
        customers = self._collections["customers"].live
        found = []
        for field, kind in (("customer_id", "customer"), ("department_id", "department")):
            target_id = body.get(field)
            if not isinstance(target_id, str):
                continue  # null, absent, or a type error reported already
            target = customers.get(target_id)
            if target is None:
                found.append(FieldError(field, f"no live customer has id {target_id!r}"))
            elif target.get("kind") != kind:
                found.append(FieldError(field, f"customer {target_id!r} is not of kind {kind!r}"))
        return found

    def _raise_problems(self, collection: _Collection, body: JsonObject, *, creating: bool) -> None:
        problems = self._problems(collection, body, creating=creating)
        if problems:
            raise InvalidBodyError(problems)

    # -- storing (callers hold the lock) -----------------------------------------------------------------

    def _insert(self, collection: _Collection, body: JsonObject) -> JsonObject:
        spec = collection.spec
        record_id = f"{spec.id_prefix}{collection.next_number:06d}"
        collection.next_number += 1
        micros = self._clock.next()
        stamp = format_utc_millis(micros)
        record: JsonObject = {"id": record_id, "version": 1, "created_at": stamp, "updated_at": stamp}
        for name in spec.schema.properties:
            if name not in spec.schema.server_fields:
                record[name] = _normalised(name, body[name]) if name in body else spec.defaults.get(name)
        collection.live[record_id] = record
        collection.index.put(record_id, micros)
        return record

    def _update(self, collection: _Collection, record_id: str, changes: JsonObject) -> JsonObject:
        record = dict(collection.live[record_id])
        for name, value in changes.items():
            record[name] = _normalised(name, value)
        micros = self._clock.next()
        record["version"] += 1
        record["updated_at"] = format_utc_millis(micros)
        collection.live[record_id] = record
        collection.index.put(record_id, micros)
        return record

    def _bury(self, collection: _Collection, record_id: str) -> None:
        del collection.live[record_id]
        micros = self._clock.next()
        collection.tombstones[record_id] = {
            "id": record_id, "deleted": True, "updated_at": format_utc_millis(micros),
        }
        collection.index.put(record_id, micros)

    # -- HTTP --------------------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Bearer {self.token}":
            return Response(401, {"error": "missing or wrong bearer token"})
        return None

    def route(self, request: Request) -> Response:
        resource, _, record_id = request.path.removeprefix(PREFIX).partition("/")
        collection = self._collections.get(resource)
        if not request.path.startswith(PREFIX) or collection is None:
            return Response(404, {"error": f"no resource at {request.path}"})
        if not record_id:
            on_collection = {"GET": self._list, "POST": self._create}.get(request.method)
            if on_collection is not None:
                return on_collection(collection, request)
        else:
            on_record = {"GET": self._read, "PATCH": self._patch, "DELETE": self._delete}.get(request.method)
            if on_record is not None:
                return on_record(collection, record_id, request)
        return Response(405, {"error": f"{request.method} is not allowed on {request.path}"})

    def _list(self, collection: _Collection, request: Request) -> Response:
        query = parse_list_query(request.query)
        with self._lock:
            index = collection.index
            start = index.first_at_or_after(query.since) if query.since is not None else 0
            if query.after is not None:
                start = max(start, index.first_after_key(query.after))
            keys: list[tuple[int, str]] = []
            # Collect one more than a page: it tells whether a next page exists, so that a full last
            # page still answers next_cursor null.
            for key in index.keys_from(start):
                if query.include_deleted or key[1] in collection.live:
                    keys.append(key)
                    if len(keys) > query.limit:
                        break
            more = len(keys) > query.limit
            keys = keys[: query.limit]
            data = [_copy(collection.item(record_id)) for _, record_id in keys]
        if collection.spec.name in self.endless_paging:
            next_cursor: str | None = self._fresh_cursor(keys[-1] if more else BEFORE_EVERY_KEY)
        else:
            next_cursor = encode_cursor(keys[-1]) if more else None
        return Response(200, {"data": data, "next_cursor": next_cursor})

    def _fresh_cursor(self, key: tuple[int, str]) -> str:
        with self._lock:
            self._cursor_serial += 1
            return encode_cursor(key, serial=self._cursor_serial)

    def _read(self, collection: _Collection, record_id: str, request: Request) -> Response:
        with self._lock:
            record = collection.live.get(record_id)
            if record is None:
                return _record_not_found(collection, record_id)
            return Response(200, _copy(record))

    def _create(self, collection: _Collection, request: Request) -> Response:
        body = _json_object(request)
        key = request.header("Idempotency-Key")
        with self._lock:
            if key and key in collection.idempotency:
                record_id = collection.idempotency[key]
                first = collection.live.get(record_id) or collection.first_answers[record_id]
                return Response(200, _copy(first))
            self._check_for_http(collection, body, creating=True)
            record = self._insert(collection, body)
            if key:
                collection.idempotency[key] = record["id"]
                collection.first_answers[record["id"]] = _copy(record)
            return Response(201, _copy(record))

    def _patch(self, collection: _Collection, record_id: str, request: Request) -> Response:
        body = _json_object(request)
        with self._lock:
            refusal = _unwritable(collection, record_id, request)
            if refusal is not None:
                return refusal
            self._check_for_http(collection, body, creating=False)
            return Response(200, _copy(self._update(collection, record_id, body)))

    def _delete(self, collection: _Collection, record_id: str, request: Request) -> Response:
        with self._lock:
            refusal = _unwritable(collection, record_id, request)
            if refusal is not None:
                return refusal
            self._bury(collection, record_id)
        return Response(204)

    def _check_for_http(self, collection: _Collection, body: JsonObject, *, creating: bool) -> None:
        """422 with every field error, then the test's refuse predicate (only for valid bodies)."""
        problems = self._problems(collection, body, creating=creating)
        reason = None if problems else self.refusal(collection.spec.name, body)
        if reason is not None:
            problems = [FieldError(next(iter(body), "name"), reason)]
        if problems:
            raise HttpError(422, {"errors": [{"field": p.field, "message": p.message} for p in problems]})


def _unwritable(collection: _Collection, record_id: str, request: Request) -> Response | None:
    """404 for a record that is not live, 412 for a stale If-Match; None when the write may go ahead."""
    if record_id not in collection.live:
        return _record_not_found(collection, record_id)
    return _stale_version(request, collection.live[record_id]["version"])


def _normalised(name: str, value: Any) -> Any:
    """Address objects are stored with all four keys, so that readers see one shape."""
    if name in ADDRESS_FIELDS and isinstance(value, dict):
        return {key: value.get(key) for key in ("line1", "line2", "postal_code", "city")}
    return value


def _copy(record: JsonObject) -> JsonObject:
    # One level deeper than dict(): address objects must not be shared with the caller either.
    return {key: dict(value) if isinstance(value, dict) else value for key, value in record.items()}


def _stale_version(request: Request, version: int) -> Response | None:
    expected = request.header("If-Match")
    if expected is None:
        return None
    cleaned = expected.strip().removeprefix("W/").strip('"')
    if cleaned == "*" or cleaned == str(version):
        return None
    return Response(412, {"error": f"version is {version}, not {cleaned}"})


def _json_object(request: Request) -> JsonObject:
    try:
        body = request.json()
    except BadJsonError as exc:
        raise HttpError(400, {"error": str(exc)}) from None
    if not isinstance(body, dict):
        raise HttpError(422, {"errors": [{"field": "", "message": "the body must be a JSON object"}]})
    return body


def _record_not_found(collection: _Collection, record_id: str) -> Response:
    return Response(404, {"error": f"{collection.spec.name} {record_id!r} not found"})


__all__ = ["DEFAULT_TOKEN", "CustompmsEmulator", "InvalidBodyError"]
