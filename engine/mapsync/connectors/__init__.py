"""Connectors: the registry keyed by the `type` name of a connection in mapsync.yaml, and the Protocol.

    connector = create_connector("tidsbanken", {"type": "tidsbanken", "base_url": ..., ...})

Every system mapsync ships a definition for (schemas/<system>/connector.yaml) is a type of its own, run by
the generic connector of `declarative`; `type: definition` runs a workspace's own definition file. A Python
connector is a plugin: an entry point in the group `mapsync.connectors` (name = type, value = a factory or
class with `SETTINGS_SCHEMA`, the JSON Schema of its connection block), or `@register("<type>")` in code.
Definitions and plugins are read on first use of the registry, so importing this package stays cheap.
"""

from __future__ import annotations

import copy
import threading
import typing
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from mapsync.connectors.base import Change, Connector, EntityInfo, Record
from mapsync.errors import SpecError
from mapsync.spec.entities import entity_schema_file

if typing.TYPE_CHECKING:
    import httpx

    from mapsync.connectors.http import HttpClient, HttpSettings

PLUGIN_GROUP = "mapsync.connectors"


class ConnectorFactory(Protocol):
    """What `register` decorates: usually the connector class itself."""

    def __call__(
        self, name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
    ) -> Connector: ...


_FactoryT = TypeVar("_FactoryT", bound=ConnectorFactory)

_factories: dict[str, ConnectorFactory] = {}
_schemas: dict[str, dict[str, Any]] = {}
_builtins_loaded = False
_plugins_loaded = False
_builtins_lock = threading.Lock()
_broken_plugins: dict[str, str] = {}  # type -> why its entry point could not be loaded


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
    _load_plugins()
    return sorted(_factories)


def is_known_type(type_name: str) -> bool:
    """Whether a connection may say `type: <type_name>` (installed plugins are looked for only when no
    shipped definition has the name: scanning them costs `mapsync validate` more than all else it imports)."""
    _load_builtins()
    if type_name not in _factories:
        _load_plugins()
    return type_name in _factories


def settings_schema(type_name: str) -> dict[str, Any]:
    """The JSON Schema of a connection block of this type (`additionalProperties: false`)."""
    if not is_known_type(type_name):
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
    if not is_known_type(type_name):
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
    if type_name in _broken_plugins:
        return SpecError(f"connector type {type_name!r}: its plugin could not be loaded: {_broken_plugins[type_name]}")
    return SpecError(f"unknown connector type {type_name!r}; known types: {', '.join(known_types())}")


def _load_builtins() -> None:
    global _builtins_loaded  # noqa: PLW0603 -- a one-time lazy-load flag
    if _builtins_loaded:
        return
    with _builtins_lock:
        if _builtins_loaded:
            return
        from mapsync.connectors.declarative import DEFINITION_TYPE, shipped_factory, shipped_systems, workspace_factory

        for system in shipped_systems():
            _factories.setdefault(system, shipped_factory(system))
            _schemas.setdefault(system, dict(_factories[system].SETTINGS_SCHEMA))  # type: ignore[attr-defined]
        _factories.setdefault(DEFINITION_TYPE, workspace_factory)
        _schemas.setdefault(DEFINITION_TYPE, dict(workspace_factory.SETTINGS_SCHEMA))  # type: ignore[attr-defined]
        _builtins_loaded = True


def _load_plugins() -> None:
    """Python connectors installed as plugins (entry point group `mapsync.connectors`), once. A plugin that
    cannot be loaded is reported when a connection uses its type, never breaks the others."""
    global _plugins_loaded  # noqa: PLW0603 -- a one-time lazy-load flag
    _load_builtins()
    if _plugins_loaded:
        return
    import importlib.metadata

    with _builtins_lock:
        if _plugins_loaded:
            return
        for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
            if entry.name in _factories:
                continue  # registered in code already (or a shipped definition: those win)
            try:
                register(entry.name)(entry.load())
            except Exception as exc:
                _broken_plugins[entry.name] = f"{type(exc).__name__}: {exc}"
        _plugins_loaded = True


def __getattr__(name: str) -> Any:
    # The HTTP layer (and httpx) is imported on first use: `mapsync validate` needs only the registry.
    if name in {"HttpClient", "HttpSettings"}:
        from mapsync.connectors import http

        return getattr(http, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PLUGIN_GROUP",
    "Change",
    "Connector",
    "ConnectorFactory",
    "EntityInfo",
    "HttpClient",
    "HttpSettings",
    "Record",
    "create_connector",
    "is_known_type",
    "known_types",
    "load_entity_info",
    "register",
    "settings_schema",
]
