"""The connector registry and the package's public surface."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from mapsync import connectors
from mapsync.connectors import (
    Connector,
    create_connector,
    known_types,
    load_entity_info,
    register,
    settings_schema,
)
from mapsync.errors import SpecError, SpecErrors
from mapsync.spec.loader import load_workspace

TB = {"type": "tidsbanken", "base_url": "https://tb.test", "api_key": "K-123", "subscription_key": "S-456"}


def test_known_types() -> None:
    assert {"custompms", "tidsbanken"} <= set(known_types())


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"unknown connector type .sap.; known types: .*custompms.*tidsbanken"):
        create_connector("erp", {"type": "sap"})


def _load_with_connection(tmp_path: Path, block: str) -> SpecErrors | SpecError:
    (tmp_path / "mapsync.yaml").write_text(f"state: sqlite:///s.db\nmappings: []\nconnections:\n  c:\n{block}")
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_workspace(tmp_path / "mapsync.yaml")
    return info.value


def test_unknown_key_is_named_at_load_without_echoing_values(tmp_path: Path) -> None:
    error = _load_with_connection(tmp_path, "    type: tidsbanken\n    base_url: http://x\n    api_key: k\n"
                                            "    subscription_key: s\n    api_kee: SECRET-VALUE\n")
    assert "mapsync.yaml:9" in str(error) and "api_kee" in str(error)
    assert "SECRET-VALUE" not in str(error)


def test_several_problems_are_reported_at_load_at_once(tmp_path: Path) -> None:
    error = _load_with_connection(tmp_path, "    type: custompms\n    base_url: http://x\n    page_size: 501\n")
    assert "token" in str(error) and "page_size" in str(error)


@pytest.mark.parametrize("type_name", ["tidsbanken", "custompms"])
def test_settings_schemas_refuse_unknown_keys(type_name: str) -> None:
    schema = settings_schema(type_name)
    assert schema["additionalProperties"] is False
    assert {"timeout", "max_retries", "rate_limit", "concurrency", "page_size"} <= set(schema["properties"])


def test_create_connector_builds_a_protocol_instance() -> None:
    connector = create_connector("tb", TB, transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    try:
        assert isinstance(connector, Connector)
        assert connector.name == "tb"
        assert set(connector.entities()) == {"Avdeling", "Kunde", "Prosjekt"}
        assert connector.entities()["Kunde"].server_fields == {"OpprettetDato", "SistEndretDato"}
    finally:
        connector.close()


def test_register_a_new_type() -> None:
    class Dummy:
        SETTINGS_SCHEMA: Mapping[str, Any] = {"type": "object", "additionalProperties": True}

        def __init__(
            self, name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None
        ) -> None:
            self.name = name

    register("dummy-test")(Dummy)  # type: ignore[type-var]
    try:
        assert "dummy-test" in known_types()
        assert create_connector("d", {"type": "dummy-test"}).name == "d"
    finally:
        connectors._factories.pop("dummy-test")
        connectors._schemas.pop("dummy-test")


def test_load_entity_info() -> None:
    info = load_entity_info("custompms", "customer.json", can_delete=True)
    assert (info.name, info.key, info.can_delete) == ("Customer", "id", True)
    assert "version" in info.server_fields
