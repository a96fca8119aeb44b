"""Connectors: the registry keyed by the `type` name of a connection in mapsync.yaml, and the Protocol.

    connector = create_connector("tidsbanken", {"type": "tidsbanken", "base_url": ..., ...})

A connector module registers its class with `@register("<type>")` and exposes `SETTINGS_SCHEMA`, the
JSON Schema of its connection block. The built-in modules are imported on first use of the registry,
so importing this package stays cheap.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import httpx

from mapsync.connectors.base import Change, Connector, EntityInfo, Record
from mapsync.connectors.http import HttpClient, HttpSettings
from mapsync.errors import SpecError
from mapsync.spec.entities import entity_schema_file

_BUILTIN_MODULES = ("mapsync.connectors.custompms", "mapsync.connectors.tidsbanken")


class ConnectorFactory(Protocol):
    """What `register` decorates: usually the connector class itself."""

    def __call__(
        self, name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
    ) -> Connector: ...


_FactoryT = TypeVar("_FactoryT", bound=ConnectorFactory)

_factories: dict[str, ConnectorFactory] = {}
_schemas: dict[str, dict[str, Any]] = {}
_builtins_loaded = False


def register(type_name: str, *, settings_schema: Mapping[str, Any] | None = None) -> Callable[[_FactoryT], _FactoryT]:
    """Register a connector factory under the `type` name used in mapsync.yaml.

    The connection block's JSON Schema is `settings_schema`, or else the factory's `SETTINGS_SCHEMA`.
    """

    def decorate(factory: _FactoryT) -> _FactoryT:
        schema = settings_schema if settings_schema is not None else getattr(factory, "SETTINGS_SCHEMA", None)
        if schema is None:
            raise TypeError(f"connector type {type_name!r} has no SETTINGS_SCHEMA")
        _factories[type_name] = factory
        _schemas[type_name] = dict(schema)
        return factory

    return decorate


def known_types() -> list[str]:
    _load_builtins()
    return sorted(_factories)


def settings_schema(type_name: str) -> dict[str, Any]:
    """The JSON Schema of a connection block of this type (`additionalProperties: false`)."""
    _load_builtins()
    if type_name not in _schemas:
        raise _unknown_type(type_name)
    return _schemas[type_name]


def create_connector(
    name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
) -> Connector:
    """Build the connector for one connection block of a loaded workspace.

    The block was checked once, when mapsync.yaml was loaded (with file and line: spec/loader.py, against
    `settings_schema`); this only picks the factory, and raises SpecError for a type nothing registered.
    """
    type_name = settings.get("type")
    if not isinstance(type_name, str):
        raise SpecError(f"connection {name!r} has no type; known types: {', '.join(known_types())}")
    _load_builtins()
    if type_name not in _factories:
        raise _unknown_type(type_name)
    return _factories[type_name](name, settings, transport=transport)


def load_entity_info(system: str, filename: str, *, can_delete: bool = False) -> EntityInfo:
    """An EntityInfo from the JSON Schema shipped in mapsync.schemas/<system>/<filename>."""
    # a copy: the parsed schema is shared with the spec checker, and an EntityInfo is handed to callers
    schema = copy.deepcopy(entity_schema_file(system, filename))
    return EntityInfo(
        name=schema["title"].split(" ", 1)[-1],
        key=schema["x-key"],
        schema=schema,
        can_delete=can_delete,
        server_fields=frozenset(schema.get("x-server-fields", ())),
    )


def _unknown_type(type_name: str) -> SpecError:
    return SpecError(f"unknown connector type {type_name!r}; known types: {', '.join(known_types())}")


def _load_builtins() -> None:
    global _builtins_loaded  # noqa: PLW0603 -- a one-time lazy-import flag
    if not _builtins_loaded:
        # Importing twice is harmless (modules are cached), so the flag is set only afterwards: a
        # thread that races this one never sees an empty registry.
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


__all__ = [
    "Change",
    "Connector",
    "ConnectorFactory",
    "EntityInfo",
    "HttpClient",
    "HttpSettings",
    "Record",
    "create_connector",
    "known_types",
    "load_entity_info",
    "register",
    "settings_schema",
]
