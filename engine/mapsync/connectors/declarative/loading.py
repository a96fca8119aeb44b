"""Reading and checking connector definitions: the shipped ones (schemas/<system>/connector.yaml) and a
workspace's own (`type: definition`), with the same bounded YAML reader, the JSON Schema, and every problem
at its file and line."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jmespath

from mapsync.connectors._http_settings import HTTP_SETTINGS_PROPERTIES
from mapsync.connectors.declarative.definition import Definition, definition_from
from mapsync.connectors.declarative.requests import ANY_BRACES, SETTING
from mapsync.errors import SpecError, SpecErrors
from mapsync.spec._schema_errors import schema_errors
from mapsync.spec._yaml import Document, KeyPath, load_document
from mapsync.spec.entities import entity_schema_file, format_schema

DEFINITION_FILE = "connector.yaml"
MAX_SCHEMA_BYTES = 2_000_000
# Settings every connection accepts besides the definition's own (the transport's, and the overlap).
COMMON_SETTINGS: dict[str, Any] = {
    **HTTP_SETTINGS_PROPERTIES,
    "overlap": {"type": "number", "minimum": 0,
                "description": "Seconds an incremental read reaches back before its cursor (over the definition's)."},
}

SchemaReader = Callable[[str], tuple[dict[str, Any] | None, str | None]]  # file -> (schema, or why not)


def load_definition_file(path: Path, display: str) -> tuple[Definition | None, list[SpecError]]:
    """A workspace's definition file, its entity schemas relative to it; every problem at file:line."""
    doc, errors = load_document(path, display)
    if doc is None:
        return None, errors
    return check_definition(doc, lambda name: _schema_beside(path.parent, name))


@cache
def shipped_definition(system: str) -> Definition:
    """The definition shipped with mapsync for `system` (a problem in it is a bug: raised whole)."""
    path = Path(str(resources.files("mapsync.schemas") / system / DEFINITION_FILE))
    doc, errors = load_document(path, f"mapsync/schemas/{system}/{DEFINITION_FILE}")
    definition = None
    if doc is not None:
        definition, errors = check_definition(doc, lambda name: (copy.deepcopy(entity_schema_file(system, name)), None))
    if definition is None:
        raise SpecErrors(errors)
    return definition


def shipped_systems() -> list[str]:
    """The systems mapsync ships a definition for (a folder of schemas/ holding connector.yaml)."""
    root = resources.files("mapsync.schemas")
    return sorted(item.name for item in root.iterdir() if item.is_dir() and (item / DEFINITION_FILE).is_file())


def check_definition(doc: Document, read_schema: SchemaReader) -> tuple[Definition | None, list[SpecError]]:
    if not isinstance(doc.data, dict):
        return None, [doc.error((), "a connector definition must be a mapping of keys (name, connection, entities)")]
    errors = schema_errors(doc, format_schema("connector.schema.json"))
    if errors:
        return None, errors  # the checks below read a document the schema accepts
    data: dict[str, Any] = doc.data
    schemas: dict[str, dict[str, Any]] = {}
    for name, raw in data["entities"].items():
        schema, problem = read_schema(raw["schema"])
        problem = problem or _entity_schema_problem(schema)
        if problem or schema is None:
            errors.append(doc.error(("entities", name, "schema"), problem or "unreadable"))
        else:
            schemas[name] = schema
    errors.extend(doc.error(path, message) for path, message in _problems(data))
    if errors:
        return None, errors
    return definition_from(data, doc.file, schemas), []


def settings_schema_of(definition: Definition, type_name: str, extra: Mapping[str, Any] | None = None
                       ) -> dict[str, Any]:
    """The JSON Schema of a connection block using `definition` (`additionalProperties: false`)."""
    properties: dict[str, Any] = {"type": {"const": type_name}, **COMMON_SETTINGS, **(extra or {})}
    properties.update(definition.settings)
    page_size = dict(properties["page_size"])
    sizes = [e.listing.paging.max_size for e in definition.entities.values() if e.listing.paging.max_size]
    if sizes:
        page_size["maximum"] = min(sizes)
    if any(e.listing.paging.kind == "keyset" for e in definition.entities.values()):
        # Keyset paging asks for the last record of a page again: it must fit on a page with another one.
        page_size["minimum"] = 2
    properties["page_size"] = page_size
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{definition.name} connection",
        "type": "object",
        "properties": properties,
        "required": ["type", *(extra or {}), *definition.required],
        "additionalProperties": False,
    }


# -- what the schema cannot say ---------------------------------------------------------------------

def _entity_schema_problem(schema: dict[str, Any] | None) -> str | None:
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return "the entity schema must be a JSON Schema object with `properties`"
    for key in ("x-key", "x-modified"):
        if not isinstance(schema.get(key), str) or schema[key] not in schema["properties"]:
            what = "the id" if key == "x-key" else "the last-modified timestamp"
            return f"the entity schema needs `{key}`: the property holding {what}"
    return None


def _schema_beside(folder: Path, name: str) -> tuple[dict[str, Any] | None, str | None]:
    path = folder / name
    try:
        if not path.is_file():
            return None, f"no entity schema file {name!r} beside the definition"
        with path.open("rb") as stream:
            raw = stream.read(MAX_SCHEMA_BYTES + 1)
    except OSError as exc:
        return None, f"cannot read {name!r}: {exc.strerror or exc}"
    if len(raw) > MAX_SCHEMA_BYTES:
        return None, f"{name!r} is larger than {MAX_SCHEMA_BYTES // 1_000_000} MB"
    try:
        schema = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, f"{name!r} is not JSON: {exc}"
    return (schema, None) if isinstance(schema, dict) else (None, f"{name!r} is not a JSON object")


_PAGING_NEEDS = {
    "offset": ("size_param", "offset_param"),
    "page_number": ("size_param", "page_param"),
    "cursor": ("cursor_param", "next"),
    "keyset": ("size_param", "offset_param"),
}
_EXPRESSIONS = (("list", "records"), ("list", "paging", "next"), ("list", "deleted"), ("read", "record"),
                ("create", "record"), ("update", "record"), ("concurrency", "version"))
_ID_TEMPLATES = (("read", "path"), ("update", "path"), ("delete", "path"))


def _problems(data: dict[str, Any]) -> Iterator[tuple[KeyPath, str]]:
    settings = set((data.get("settings") or {}).get("properties") or {}) | set(COMMON_SETTINGS)
    yield from _unknown_settings(data.get("connection") or {}, ("connection",), settings)
    yield from _expression_problems(data.get("errors") or {}, ("errors",))
    for name, entity in data["entities"].items():
        base: KeyPath = ("entities", name)
        yield from _unknown_settings(entity["list"].get("params") or {}, (*base, "list", "params"), settings)
        yield from _paging_problems(entity["list"], (*base, "list"))
        yield from _expression_problems(entity, base)
        yield from _template_problems(entity, base)
        update = entity.get("update")
        if update and "{id" not in update["path"] and not update.get("id_in_body"):
            yield (*base, "update", "path"), "the update must name its record: put {id} in the path or set id_in_body"
    default = (data.get("defaults") or {}).get("page_size")
    sizes = [e["list"].get("paging", {}).get("max_size") for e in data["entities"].values()]
    smallest = min((s for s in sizes if s), default=None)
    if default and smallest and default > smallest:
        yield ("defaults", "page_size"), f"page_size {default} is larger than a listing's max_size {smallest}"


def _paging_problems(listing: dict[str, Any], base: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    paging = listing.get("paging") or {}
    kind = paging.get("kind", "none")
    for key in _PAGING_NEEDS.get(kind, ()):
        if not paging.get(key):
            yield (*base, "paging"), f"{kind} paging needs `{key}`"
    incremental = listing.get("incremental") or {}
    if kind == "keyset" and incremental.get("comparison") != "strict":
        yield (*base, "paging", "kind"), ("keyset paging re-anchors through the incremental filter: it needs an "
                                          "`incremental` filter with `comparison: strict`")


def _expression_problems(raw: dict[str, Any], base: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    for path in (*_EXPRESSIONS, ("message",), ("fields",)):
        value: Any = raw
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, str):
            try:
                jmespath.compile(value)
            except jmespath.exceptions.JMESPathError as exc:
                yield (*base, *path), f"not a JMESPath expression: {str(exc).splitlines()[0]}"


def _template_problems(entity: dict[str, Any], base: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    for section, key in _ID_TEMPLATES:
        template = (entity.get(section) or {}).get(key)
        for name in ANY_BRACES.findall(template or ""):
            if name not in ("id", "id:odata"):
                yield (*base, section, key), f"unknown placeholder {{{name}}} (use {{id}} or {{id:odata}})"
    for name, value in ((entity.get("read") or {}).get("params") or {}).items():
        for placeholder in ANY_BRACES.findall(str(value)):
            if placeholder not in ("id", "id:odata"):
                yield (*base, "read", "params", name), f"unknown placeholder {{{placeholder}}}"
    create = entity.get("create") or {}
    if "{id" in create.get("path", "") and create.get("ids") != "client":
        yield (*base, "create", "path"), "{id} in a create path needs `ids: client` (the server picks its ids)"


def _unknown_settings(raw: Any, base: KeyPath, settings: set[str]) -> Iterator[tuple[KeyPath, str]]:
    """`${name}` placeholders that name no setting of the connection."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield from _unknown_settings(value, (*base, key), settings)
    elif isinstance(raw, str):
        for name in SETTING.findall(raw):
            if name not in settings:
                known = ", ".join(sorted(settings - set(COMMON_SETTINGS))) or "none declared"
                yield base, f"${{{name}}} names no setting (settings: {known})"
