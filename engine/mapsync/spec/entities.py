"""The entity schemas shipped with mapsync: schemas/<system>/<entity>.json inside the package."""

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
            schema = json.loads(item.read_text(encoding="utf-8"))
            name = str(schema.get("title", item.name[:-5])).split(" ", 1)[-1]
            found[name] = schema
    return found


def entity_names(system: str) -> list[str]:
    return sorted(_system_schemas(system))


def entity_schema(system: str, entity: str) -> dict[str, Any] | None:
    return _system_schemas(system).get(entity)


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
