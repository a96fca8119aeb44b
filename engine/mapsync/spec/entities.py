"""The entity schemas shipped with mapsync: schemas/<system>/<entity>.json inside the package.

The one loader of them: the spec checker, the connectors and the sandbox all read them through here,
so each file is read and parsed once.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def _system_schemas(system: str) -> dict[str, dict[str, Any]]:
    folder = resources.files("mapsync.schemas") / system
    if not folder.is_dir():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            schema = entity_schema_file(system, item.name)
            name = str(schema.get("title", item.name[:-5])).split(" ", 1)[-1]
            found[name] = schema
    return found


@cache
def entity_schema_file(system: str, filename: str) -> dict[str, Any]:
    """The schema in schemas/<system>/<filename>, parsed once; shared, so callers must not change it."""
    text = (resources.files("mapsync.schemas") / system / filename).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# Systems described by a workspace's own connector definition (`type: definition`), by the name the
# definition gives them: registered by the loader when it reads the definition, beside the shipped ones.
_defined_systems: dict[str, dict[str, dict[str, Any]]] = {}


def register_system(system: str, schemas: dict[str, dict[str, Any]]) -> None:
    """Make a workspace definition's entity schemas known under its system name (over a shipped one)."""
    _defined_systems[system] = dict(schemas)


def entity_names(system: str) -> list[str]:
    return sorted(_defined_systems.get(system) or _system_schemas(system))


def entity_schema(system: str, entity: str) -> dict[str, Any] | None:
    return (_defined_systems.get(system) or _system_schemas(system)).get(entity)


@cache
def format_schema(name: str) -> dict[str, Any]:
    """mapping.schema.json or config.schema.json."""
    text = (resources.files("mapsync.schemas") / name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def property_schema(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema of a dotted property path, walking nested object properties; None if absent."""
    node: dict[str, Any] | None = schema
    for part in path.split("."):
        props = (node or {}).get("properties", {})
        if part not in props:
            return None
        node = props[part]
    return node
