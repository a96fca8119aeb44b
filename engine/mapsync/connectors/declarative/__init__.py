"""Declarative connectors: a system described by a YAML definition (schemas/connector.schema.json),
executed by one generic HTTP connector."""

from __future__ import annotations

from mapsync.connectors.declarative.connector import (
    DEFINITION_TYPE,
    DeclarativeConnector,
    definition_settings_schema,
    shipped_factory,
    workspace_factory,
)
from mapsync.connectors.declarative.definition import Definition, EntityDefinition
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
