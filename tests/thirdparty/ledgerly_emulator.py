"""Ledgerly, a made-up accounting API, emulated: the third system of docs/adding-a-system.md.

It is nothing like Tidsbanken or Custompms on purpose, so that its definition exercises the format:

    POST   /oauth/token                  OAuth2 client credentials (form body) -> access_token, expires_in
    GET    /api/v2/contacts              ?page=1&per_page=50 (at most 100), ?modified_after=<ISO 8601> (strict),
                                         ?include_deleted=true; answers {items, page, per_page, total_pages, next}
    GET    /api/v2/contacts/{id}         the contact, or 404
    POST   /api/v2/contacts              201 with the stored contact; an Idempotency-Key repeats the first answer
    PUT    /api/v2/contacts/{id}         the whole contact; its `version` must be the stored one, else 412
    DELETE /api/v2/contacts/{id}         204; the contact stays listed as {id, deleted_at, modified_at}

Errors are `{"error": {"message": ..., "details": [{"property": ..., "issue": ...}]}}`. Built like the
sandbox emulators: a handler over its own data, served in process (`transport()`) or on 127.0.0.1 (`start()`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jsonschema import Draft202012Validator

from mapsync.sandbox._emulator import Emulator
from mapsync.sandbox._http import BadJsonError, HttpError, JsonObject, Request, Response
from mapsync.sandbox._time import format_utc_millis, parse_aware_datetime, to_micros

SCHEMA_PATH = Path(__file__).parent / "workspace" / "connectors" / "ledgerly" / "contact.json"
CLIENT_ID = "mapsync-sandbox"
CLIENT_SECRET = "ledgerly-sandbox-secret"
PREFIX = "/api/v2/contacts"
MAX_PER_PAGE = 100


def _error(status: int, message: str, details: Sequence[tuple[str, str]] = ()) -> HttpError:
    body: JsonObject = {"error": {"message": message}}
    if details:
        body["error"]["details"] = [{"property": field, "issue": issue} for field, issue in details]
    return HttpError(status, body)


class LedgerlyEmulator(Emulator):
    """Ledgerly's contacts on 127.0.0.1, with direct access for tests ("as if a person used the UI")."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, expires_in: int = 3600) -> None:
        super().__init__(host=host, port=port)
        self.client_id, self.client_secret = CLIENT_ID, CLIENT_SECRET
        self.expires_in = expires_in
        self.tokens: set[str] = set()
        self.token_requests = 0
        self._schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        self._validator = Draft202012Validator(self._schema)
        self._server_fields = set(self._schema["x-server-fields"])
        self._live: dict[str, JsonObject] = {}
        self._tombstones: dict[str, JsonObject] = {}
        self._stamps: dict[str, int] = {}
        self._idempotency: dict[str, JsonObject] = {}
        self._next_number = 1

    # -- direct access (no HTTP) ---------------------------------------------------------------------------

    def records(self) -> list[JsonObject]:
        with self._lock:
            return [dict(self._live[i]) for i in self._ordered_ids() if i in self._live]

    def get(self, record_id: str) -> JsonObject | None:
        with self._lock:
            record = self._live.get(record_id)
            return None if record is None else json.loads(json.dumps(record))

    def create(self, body: JsonObject) -> JsonObject:
        with self._lock:
            self._check(body, creating=True)
            return dict(self._insert(body))

    def edit(self, record_id: str, **changes: Any) -> JsonObject:
        with self._lock:
            merged = {k: v for k, v in {**self._live[record_id], **changes}.items() if k not in self._server_fields}
            self._check(merged, creating=False)
            return dict(self._store(record_id, merged))

    def delete(self, record_id: str) -> None:
        with self._lock:
            self._bury(record_id)

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (the API answers 401 until a new one is fetched)."""
        with self._lock:
            self.tokens.clear()

    # -- HTTP ----------------------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        if request.path == "/oauth/token":
            return None
        token = (request.header("Authorization") or "").removeprefix("Bearer ")
        with self._lock:
            known = token in self.tokens
        return None if known else _error(401, "invalid or expired access token").response

    def route(self, request: Request) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token(request)
        if request.path == PREFIX:
            on_collection = {"GET": self._list, "POST": self._create}.get(request.method)
            if on_collection is not None:
                return on_collection(request)
        elif request.path.startswith(PREFIX + "/"):
            record_id = request.path.removeprefix(PREFIX + "/")
            on_record = {"GET": self._read, "PUT": self._put, "DELETE": self._delete}.get(request.method)
            if on_record is not None:
                with self._lock:
                    return on_record(record_id, request)
        raise _error(404 if request.method == "GET" else 405, f"nothing answers {request.method} {request.path}")

    def _token(self, request: Request) -> Response:
        fields = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
        with self._lock:
            self.token_requests += 1
            if fields.get("grant_type") != "client_credentials":
                return Response(400, {"error": "unsupported_grant_type"})
            if (fields.get("client_id"), fields.get("client_secret")) != (self.client_id, self.client_secret):
                return Response(401, {"error": "invalid_client", "error_description": "unknown client"})
            token = "lgr_" + secrets.token_hex(12)
            self.tokens.add(token)
        return Response(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in})

    def _list(self, request: Request) -> Response:
        page, per_page = _whole(request.query.get("page", "1"), "page"), _whole(request.query.get("per_page", "25"),
                                                                                  "per_page")
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise _error(400, f"page must be 1 or more, per_page 1 to {MAX_PER_PAGE}")
        after = self._modified_after(request.query.get("modified_after"))
        with_deleted = request.query.get("include_deleted") == "true"
        with self._lock:
            ids = [i for i in self._ordered_ids() if (after is None or self._stamps[i] > after)
                   and (with_deleted or i in self._live)]
            chosen = ids[(page - 1) * per_page: page * per_page]
            items = [dict(self._live.get(i) or self._tombstones[i]) for i in chosen]
        total_pages = max(1, -(-len(ids) // per_page))
        following = {**request.query, "page": str(page + 1)}
        nxt = f"{PREFIX}?{urlencode(following)}" if page < total_pages else None
        return Response(200, {"items": items, "page": page, "per_page": per_page, "total_pages": total_pages,
                              "next": nxt})

    def _modified_after(self, text: str | None) -> int | None:
        if text is None:
            return None
        moment = parse_aware_datetime(text)
        if moment is None:
            raise _error(400, "modified_after must be an ISO 8601 date-time with a zone")
        return to_micros(moment)

    def _read(self, record_id: str, request: Request) -> Response:
        if record_id not in self._live:
            raise _error(404, f"contact {record_id} not found")
        return Response(200, dict(self._live[record_id]))

    def _create(self, request: Request) -> Response:
        body = _json_object(request)
        key = request.header("Idempotency-Key")
        with self._lock:
            if key and key in self._idempotency:
                return Response(201, dict(self._idempotency[key]))
            self._check(body, creating=True)
            record = self._insert(body)
            if key:
                self._idempotency[key] = dict(record)
            return Response(201, dict(record))

    def _put(self, record_id: str, request: Request) -> Response:
        body = _json_object(request)
        if record_id not in self._live:
            raise _error(404, f"contact {record_id} not found")
        version = body.pop("version", None)
        if not isinstance(version, int):
            raise _error(422, "the contact is invalid", [("version", "is required in an update")])
        if version != self._live[record_id]["version"]:
            raise _error(412, f"version is {self._live[record_id]['version']}, not {version}")
        self._check(body, creating=False)
        return Response(200, dict(self._store(record_id, body)))

    def _delete(self, record_id: str, request: Request) -> Response:
        if record_id not in self._live:
            raise _error(404, f"contact {record_id} not found")
        self._bury(record_id)
        return Response(204)

    # -- storing (callers hold the lock) -------------------------------------------------------------------

    def _check(self, body: JsonObject, *, creating: bool) -> None:
        problems = [(name, "is set by the server") for name in body if name in self._server_fields]
        client = {k: v for k, v in body.items() if k not in self._server_fields}
        for error in self._validator.iter_errors(client):
            field = ".".join(str(part) for part in error.absolute_path) or _named(error.message)
            problems.append((field, error.message))
        refusal = None if problems else self.refusal("contacts", body)
        if refusal is not None:
            problems.append((next(iter(body), "name"), refusal))
        if problems:
            raise _error(422, "the contact is invalid", problems)

    def _insert(self, body: JsonObject) -> JsonObject:
        record_id = f"ct_{self._next_number:06d}"
        self._next_number += 1
        micros = self._clock.next()
        record = {"id": record_id, "version": 0, "created_at": format_utc_millis(micros)}
        self._live[record_id] = record
        return self._store(record_id, body, micros)

    def _store(self, record_id: str, body: JsonObject, micros: int | None = None) -> JsonObject:
        """A whole-record write: what the body leaves out is null (status: active)."""
        micros = self._clock.next() if micros is None else micros
        old = self._live[record_id]
        record: JsonObject = {"id": record_id, "version": old["version"] + 1, "created_at": old["created_at"],
                              "modified_at": format_utc_millis(micros)}
        for name in self._schema["properties"]:
            if name not in self._server_fields:
                record[name] = body.get(name, "active" if name == "status" else None)
        self._live[record_id] = record
        self._stamps[record_id] = micros
        return record

    def _bury(self, record_id: str) -> None:
        del self._live[record_id]
        micros = self._clock.next()
        stamp = format_utc_millis(micros)
        self._tombstones[record_id] = {"id": record_id, "deleted_at": stamp, "modified_at": stamp}
        self._stamps[record_id] = micros

    def _ordered_ids(self) -> list[str]:
        return sorted(self._stamps, key=lambda i: (self._stamps[i], i))


def _whole(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _error(400, f"{name} must be a whole number") from None


def _named(message: str) -> str:
    """The property a message of jsonschema's names ("'name' is a required property")."""
    return message.split("'")[1] if message.count("'") >= 2 else ""


def _json_object(request: Request) -> JsonObject:
    try:
        body = request.json()
    except BadJsonError as exc:
        raise _error(400, str(exc)) from None
    if not isinstance(body, dict):
        raise _error(422, "the body must be a JSON object")
    return body


__all__ = ["CLIENT_ID", "CLIENT_SECRET", "LedgerlyEmulator"]
