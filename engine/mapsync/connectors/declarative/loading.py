"""Reading and checking connector definitions: the shipped ones (schemas/<system>/connector.yaml) and a
workspace's own (`type: definition`), with the same bounded YAML reader, the JSON Schema, and every problem
at its file and line (the checks the schema cannot make are in `checks`)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mapsync.connectors.declarative.checks import (
    COMMON_SETTINGS,
    definition_problems,
    entity_schema_problem,
    schema_beside,
)
from mapsync.connectors.declarative.definition import Definition, definition_from
from mapsync.errors import SpecError, SpecErrors
from mapsync.spec._schema_errors import schema_errors
from mapsync.spec._yaml import Document, load_document
from mapsync.spec.entities import entity_schema_file, format_schema

DEFINITION_FILE = "connector.yaml"

SchemaReader = Callable[[str], tuple[dict[str, Any] | None, str | None]]  # file -> (schema, or why not)


def load_definition_file(path: Path, display: str) -> tuple[Definition | None, list[SpecError]]:
    """A workspace's definition file, its entity schemas relative to it; every problem at file:line."""
    doc, errors = load_document(path, display)
    if doc is None:
        return None, errors
    definition, problems = check_definition(doc, lambda name: schema_beside(path.parent, name))
    errors += problems  # a duplicate key is reported beside the rest, and the definition refused
    return (definition if not errors else None), errors


@cache
def shipped_definition(system: str) -> Definition:
    """The definition shipped with mapsync for `system` (a problem in it is a bug: raised whole)."""
    path = Path(str(resources.files("mapsync.schemas") / system / DEFINITION_FILE))
    doc, errors = load_document(path, f"mapsync/schemas/{system}/{DEFINITION_FILE}")
    definition = None
    if doc is not None:
        # mapsync's own entity schemas are checked against the meta-schema by its tests, not at every start
        # (some 15 ms of `mapsync validate`)
        definition, problems = check_definition(doc, lambda name: _shipped_schema(system, name), meta=False)
        errors += problems
    if definition is None or errors:
        # the user cannot fix mapsync's own file: say whose it is, at its line all the same
        note = f" (mapsync's own {system} definition is broken: reinstall mapsync, or report it if that does not help)"
        raise SpecErrors(SpecError(e.message + note, e.location) for e in errors)
    return definition


def _shipped_schema(system: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return copy.deepcopy(entity_schema_file(system, name)), None
    except (OSError, ValueError) as exc:  # a release missing a file: said at the definition's line, not raised
        return None, f"cannot read the shipped entity schema {name!r}: {str(exc).splitlines()[0]}"


def shipped_systems() -> list[str]:
    """The systems mapsync ships a definition for (a folder of schemas/ holding connector.yaml)."""
    root = resources.files("mapsync.schemas")
    return sorted(item.name for item in root.iterdir() if item.is_dir() and (item / DEFINITION_FILE).is_file())


def check_definition(doc: Document, read_schema: SchemaReader, *, meta: bool = True
                     ) -> tuple[Definition | None, list[SpecError]]:
    """The definition in `doc`, or every problem in it: the schema's and the rest, each at its line
    (`meta=False`: its entity schemas are not checked against the JSON Schema meta-schema)."""
    if not isinstance(doc.data, dict):
        empty = "the file is empty: " if doc.data is None else ""
        return None, [doc.error((), f"{empty}a connector definition must be a mapping of keys (name, connection, "
                                    "entities)")]
    data: dict[str, Any] = doc.data
    errors = schema_errors(doc, format_schema("connector.schema.json"))
    schemas = _entity_schemas(doc, read_schema, errors, meta=meta)
    errors.extend(doc.error(path, message) for path, message in definition_problems(data))
    if errors:
        return None, errors
    return definition_from(data, doc.file, schemas), []


def _entity_schemas(doc: Document, read_schema: SchemaReader, errors: list[SpecError], *, meta: bool = True
                    ) -> dict[str, dict[str, Any]]:
    """Each entity's JSON Schema read and checked; a problem is added to `errors` at the entity's `schema`."""
    schemas: dict[str, dict[str, Any]] = {}
    entities = doc.data.get("entities")
    for name, raw in (entities.items() if isinstance(entities, dict) else ()):
        file = raw.get("schema") if isinstance(raw, dict) else None
        if not isinstance(file, str) or not file:
            continue  # the JSON Schema reports it
        schema, problem = read_schema(file)
        problem = problem or entity_schema_problem(schema, meta=meta)
        if problem or schema is None:
            errors.append(doc.error(("entities", name, "schema"), problem or "unreadable"))
        else:
            schemas[name] = schema
    return schemas


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
