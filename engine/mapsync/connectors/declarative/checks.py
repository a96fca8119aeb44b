"""What the connector definition's JSON Schema cannot say, checked before anything runs: each problem a key
path and a message (`loading` adds file and line). Every check reads the document defensively, so that it
still runs beside the schema's own errors: a file with three mistakes gets three messages in one go."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
from jmespath.functions import Functions

from mapsync.connectors._http_settings import HTTP_SETTINGS_PROPERTIES
from mapsync.connectors.declarative.requests import ANY_BRACES, SETTING
from mapsync.spec._expression import expression_problem, readable_parse_error
from mapsync.spec._yaml import KeyPath

Problem = tuple[KeyPath, str]
MAX_SCHEMA_BYTES = 2_000_000
# Settings every connection accepts besides the definition's own (the transport's, and the overlap).
COMMON_SETTINGS: dict[str, Any] = {
    **HTTP_SETTINGS_PROPERTIES,
    "overlap": {"type": "number", "minimum": 0,
                "description": "Seconds an incremental read reaches back before its cursor (over the definition's)."},
}
# The settings an auth kind reads when the definition does not name them (connectors/auth.py).
_AUTH_DEFAULTS: dict[str, dict[str, str]] = {
    "bearer": {"token": "${token}"},
    "basic": {"username": "${username}", "password": "${password}"},
    "oauth2_client_credentials": {"client_id": "${client_id}", "client_secret": "${client_secret}"},
}
_PAGING_NEEDS = {
    "offset": ("size_param", "offset_param"),
    "page_number": ("size_param", "page_param"),
    "cursor": ("cursor_param", "next"),
    "keyset": ("size_param", "offset_param"),
}
# The paging keys only some kinds read (size_param and max_size serve every kind).
_PAGING_KEY_KINDS = {
    "offset_param": ("offset", "keyset"),
    "page_param": ("page_number",),
    "first_page": ("page_number",),
    "cursor_param": ("cursor",),
    "next": ("cursor", "next_link"),
}
_EXPRESSIONS = (("list", "records"), ("list", "paging", "next"), ("list", "deleted"), ("read", "record"),
                ("create", "record"), ("update", "record"), ("concurrency", "version"))
_ID_TEMPLATES = (("read", "path"), ("update", "path"), ("delete", "path"))
_ID_PLACEHOLDERS = ("id", "id:odata")


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (the schema reports the wrong type)."""
    return value if isinstance(value, dict) else {}


def definition_problems(data: dict[str, Any]) -> Iterator[Problem]:
    """Every problem of a definition the JSON Schema cannot see, whether or not the schema accepted it."""
    declared = set(_mapping(_mapping(data.get("settings")).get("properties")))
    settings = declared | set(COMMON_SETTINGS)
    yield from _settings_fragment_problems(_mapping(data.get("settings")))
    connection = _mapping(data.get("connection"))
    yield from _unknown_settings(_with_defaults(connection), ("connection",), settings, declared)
    yield from _expression_problems(_mapping(data.get("errors")), ("errors",), (("message",), ("fields",)))
    entities = _mapping(data.get("entities"))
    for name, entity in entities.items():
        yield from _entity_problems(_mapping(entity), ("entities", name), settings, declared)
    yield from _page_size_problems(data, entities)


def _entity_problems(entity: dict[str, Any], base: KeyPath, settings: set[str], declared: set[str]
                     ) -> Iterator[Problem]:
    listing = _mapping(entity.get("list"))
    yield from _unknown_settings(_mapping(listing.get("params")), (*base, "list", "params"), settings, declared)
    yield from _paging_problems(listing, (*base, "list"))
    yield from _expression_problems(entity, base, _EXPRESSIONS)
    yield from _template_problems(entity, base)
    update = _mapping(entity.get("update"))
    path = update.get("path")
    if isinstance(path, str) and "{id" not in path and not update.get("id_in_body"):
        yield (*base, "update", "path"), "the update must name its record: put {id} in the path or set id_in_body"
    concurrency = _mapping(entity.get("concurrency"))
    if concurrency and not concurrency.get("header") and not concurrency.get("body_field"):
        yield (*base, "concurrency"), "concurrency needs `header` (e.g. If-Match) or `body_field` to send the version"


def _page_size_problems(data: dict[str, Any], entities: dict[str, Any]) -> Iterator[Problem]:
    default = _mapping(data.get("defaults")).get("page_size")
    sizes = [_mapping(_mapping(_mapping(e).get("list")).get("paging")).get("max_size") for e in entities.values()]
    smallest = min((s for s in sizes if isinstance(s, int)), default=None)
    if isinstance(default, int) and smallest and default > smallest:
        yield ("defaults", "page_size"), f"page_size {default} is larger than a listing's max_size {smallest}"


def _paging_problems(listing: dict[str, Any], base: KeyPath) -> Iterator[Problem]:
    paging = _mapping(listing.get("paging"))
    kind = paging.get("kind", "none")
    if not isinstance(kind, str) or kind not in {"none", "next_link", *_PAGING_NEEDS}:
        return  # the schema names the kinds
    for key in _PAGING_NEEDS.get(kind, ()):
        if not paging.get(key):
            yield (*base, "paging"), f"{kind} paging needs `{key}`"
    for key, kinds in _PAGING_KEY_KINDS.items():
        if key in paging and kind not in kinds:
            yield (*base, "paging", key), f"{kind} paging ignores `{key}` (it serves {' and '.join(kinds)} paging)"
    incremental = _mapping(listing.get("incremental"))
    if kind == "keyset" and incremental.get("comparison") != "strict":
        yield (*base, "paging", "kind"), ("keyset paging re-anchors through the incremental filter: it needs an "
                                          "`incremental` filter with `comparison: strict`")


def _expression_problems(raw: dict[str, Any], base: KeyPath, paths: tuple[tuple[str, ...], ...]
                         ) -> Iterator[Problem]:
    for path in paths:
        value: Any = raw
        for step in path:
            value = _mapping(value).get(step)
        if isinstance(value, str):
            problem = jmespath_problem(value)
            if problem:
                yield (*base, *path), problem


def jmespath_problem(expression: str) -> str | None:
    """Why `expression` is no JMESPath a definition can use (plain JMESPath: its own functions only)."""
    return expression_problem(expression, functions=Functions.FUNCTION_TABLE, parse_error=readable_parse_error)


def _template_problems(entity: dict[str, Any], base: KeyPath) -> Iterator[Problem]:
    for section, key in _ID_TEMPLATES:
        template = _mapping(entity.get(section)).get(key)
        for name in ANY_BRACES.findall(template if isinstance(template, str) else ""):
            if name not in _ID_PLACEHOLDERS:
                yield (*base, section, key), f"unknown placeholder {{{name}}} (use {{id}} or {{id:odata}})"
    for name, value in _mapping(_mapping(entity.get("read")).get("params")).items():
        for placeholder in ANY_BRACES.findall(str(value)):
            if placeholder not in _ID_PLACEHOLDERS:
                yield (*base, "read", "params", name), f"unknown placeholder {{{placeholder}}}"
    create = _mapping(entity.get("create"))
    path = create.get("path")
    if isinstance(path, str) and "{id" in path and create.get("ids") != "client":
        yield (*base, "create", "path"), "{id} in a create path needs `ids: client` (the server picks its ids)"


def _with_defaults(connection: dict[str, Any]) -> dict[str, Any]:
    """The connection block with the settings read when it names none (base_url, the auth kind's)."""
    auth = connection.get("auth")
    if isinstance(auth, dict):
        auth = {**_AUTH_DEFAULTS.get(str(auth.get("kind")), {}), **auth}
    return {"base_url": "${base_url}", **connection, **({"auth": auth} if auth is not None else {})}


def _unknown_settings(raw: Any, base: KeyPath, settings: set[str], declared: set[str]) -> Iterator[Problem]:
    """`${name}` placeholders that name no setting of the connection."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield from _unknown_settings(value, (*base, key), settings, declared)
    elif isinstance(raw, str):
        for name in SETTING.findall(raw):
            if name not in settings:
                known = ", ".join(sorted(declared)) or "none declared"
                yield base, f"${{{name}}} names no setting (settings: {known})"


# -- JSON Schemas inside a definition: its settings fragment, its entity schemas ----------------------------

_META = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA,
                                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def json_schema_problems(schema: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Where and why `schema` is no JSON Schema (draft 2020-12) a connection or a record could be checked
    against: without this, an unknown type or a broken pattern would fail inside the checks, at run time."""
    try:
        found = sorted(_META.iter_errors(schema), key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError:
        yield (), "the schema is nested too deeply"
        return
    for error in found:
        path = tuple(error.absolute_path)
        if path and path[-1] == "type":
            yield path, f"unknown type {error.instance!r} (known: {', '.join(_TYPES)})"
        elif error.validator == "format" and error.validator_value == "regex":
            yield path, f"not a regular expression: {error.instance!r}"
        else:
            yield path, error.message


def _settings_fragment_problems(settings: dict[str, Any]) -> Iterator[Problem]:
    properties = _mapping(settings.get("properties"))
    for name, schema in properties.items():
        if isinstance(schema, dict):
            for path, message in json_schema_problems(schema):
                yield ("settings", "properties", name, *path), message
    required = settings.get("required")
    for index, name in enumerate(required if isinstance(required, list) else []):
        if isinstance(name, str) and name not in properties:
            known = ", ".join(sorted(properties)) or "none declared"
            yield ("settings", "required", index), f"{name!r} is required but not declared (settings: {known})"


def entity_schema_problem(schema: Any, *, meta: bool = True) -> str | None:
    """Why an entity's JSON Schema cannot describe its records, or None (`meta=False`: without checking it
    against the meta-schema, the slow part)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return "the entity schema must be a JSON Schema object with `properties`"
    for key in ("x-key", "x-modified"):
        named = schema.get(key)
        if isinstance(named, str) and named not in schema["properties"]:
            return f"the entity schema's `{key}` names {named!r}, which is not one of its properties"
        if not isinstance(named, str):
            what = "the id" if key == "x-key" else "the last-modified timestamp"
            return f"the entity schema needs `{key}`: the property holding {what}"
    server = schema.get("x-server-fields", [])
    if not isinstance(server, list) or not all(isinstance(n, str) and n in schema["properties"] for n in server):
        return "the entity schema's `x-server-fields` must be a list of its properties (those the server sets)"
    for path, message in json_schema_problems(schema) if meta else ():
        where = ".".join(map(str, path))
        return f"the entity schema is not a valid JSON Schema{f' at {where}' if where else ''}: {message}"
    return None


def schema_beside(folder: Path, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON file `name` relative to a workspace definition's folder, or why not."""
    raw, problem = _schema_bytes(folder, name)
    if raw is None:
        return None, problem
    try:
        schema = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, f"{name!r} is not JSON: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return (schema, None) if isinstance(schema, dict) else (None, f"{name!r} is not a JSON object")


def _schema_bytes(folder: Path, name: str) -> tuple[bytes | None, str | None]:
    if Path(name).is_absolute() or re.match(r"^[A-Za-z]:", name):
        return None, f"{name!r} must be a path relative to the definition file"
    path = folder / name
    try:
        if path.is_dir():
            return None, f"{name!r} is a folder, not an entity schema file"
        if not path.is_file():
            return None, f"no entity schema file {name!r} beside the definition"
        with path.open("rb") as stream:
            raw = stream.read(MAX_SCHEMA_BYTES + 1)
    except OSError as exc:
        return None, f"cannot read {name!r}: {exc.strerror or exc}"
    if len(raw) > MAX_SCHEMA_BYTES:
        return None, f"{name!r} is larger than {MAX_SCHEMA_BYTES // 1_000_000} MB"
    return raw, None
