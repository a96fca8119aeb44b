"""Declarative connectors: a system described by a YAML definition (schemas/connector.schema.json),
executed by one generic HTTP connector."""

from __future__ import annotations

import typing
from typing import Any

from mapsync.connectors.declarative.definition import Definition, EntityDefinition
from mapsync.connectors.declarative.factories import (
    DEFINITION_TYPE,
    definition_settings_schema,
    shipped_factory,
    workspace_factory,
)
from mapsync.connectors.declarative.loading import (
    load_definition_file,
    settings_schema_of,
    shipped_definition,
    shipped_systems,
)

__all__ = [
    "DEFINITION_TYPE",
    "DeclarativeConnector",
    "Definition",
    "EntityDefinition",
    "definition_settings_schema",
    "load_definition_file",
    "settings_schema_of",
    "shipped_definition",
    "shipped_factory",
    "shipped_systems",
    "workspace_factory",
]

if typing.TYPE_CHECKING:
    from mapsync.connectors.declarative.connector import DeclarativeConnector


def __getattr__(name: str) -> Any:
    # The connector (and httpx under it) is imported on first use: validate reads definitions only.
    if name == "DeclarativeConnector":
        from mapsync.connectors.declarative.connector import DeclarativeConnector

        return DeclarativeConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
