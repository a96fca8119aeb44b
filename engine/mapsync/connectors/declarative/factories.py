"""The registry's factories for definitions: cheap to import (no httpx), so `mapsync validate` can ask for
a type's settings schema without loading the HTTP stack; the connector itself is imported when one is built."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mapsync.connectors.declarative.definition import Definition
from mapsync.connectors.declarative.loading import load_definition_file, settings_schema_of, shipped_definition
from mapsync.errors import SpecError, SpecErrors

if TYPE_CHECKING:
    import httpx

    from mapsync.connectors.declarative.connector import DeclarativeConnector


def _connector(name: str, definition: Definition, settings: Mapping[str, Any],
               transport: httpx.BaseTransport | None) -> DeclarativeConnector:
    from mapsync.connectors.declarative.connector import DeclarativeConnector

    return DeclarativeConnector(name, definition, settings, transport=transport)


def shipped_factory(system: str) -> Any:
    """The registry's factory for a shipped definition, with its SETTINGS_SCHEMA."""

    def factory(name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
                ) -> DeclarativeConnector:
        return _connector(name, shipped_definition(system), settings, transport)

    factory.SETTINGS_SCHEMA = settings_schema_of(shipped_definition(system), system)  # type: ignore[attr-defined]
    return factory


DEFINITION_TYPE = "definition"
# The connection block of `type: definition`, before its definition is read: the loader checks the rest
# against the definition's own settings (definition_settings_schema).
DEFINITION_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"const": DEFINITION_TYPE},
        "definition": {"type": "string", "minLength": 1,
                       "description": "The connector definition file, relative to mapsync.yaml."},
    },
    "required": ["type", "definition"],
    "additionalProperties": True,
}


def definition_settings_schema(definition: Definition) -> dict[str, Any]:
    extra = {"definition": DEFINITION_SETTINGS_SCHEMA["properties"]["definition"]}
    return settings_schema_of(definition, DEFINITION_TYPE, extra)


def workspace_factory(name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
                      ) -> DeclarativeConnector:
    """`type: definition`: the definition named by the block's `definition` (made absolute by the loader)."""
    path = Path(str(settings.get("definition", "")))
    definition, errors = load_definition_file(path, str(path))
    if definition is None:
        raise SpecErrors(errors) if errors else SpecError(f"connection {name!r}: no definition at {path}")
    return _connector(name, definition, settings, transport)


workspace_factory.SETTINGS_SCHEMA = DEFINITION_SETTINGS_SCHEMA  # type: ignore[attr-defined]
