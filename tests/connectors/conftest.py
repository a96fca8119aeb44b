"""Connectors pointed at a started Sandbox (the sandboxes come from the suite-wide fixtures)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mapsync.connectors import create_connector
from mapsync.connectors.base import Connector
from mapsync.sandbox import Sandbox


@pytest.fixture
def connect_to() -> Iterator[Callable[..., Connector]]:
    """connect_to(sandbox, "tidsbanken" | "custompms", **settings) -> a connector, closed afterwards."""
    made: list[Connector] = []

    def connect(sandbox: Sandbox, system: str, **settings: Any) -> Connector:
        if system == "tidsbanken":
            block = {
                "type": "tidsbanken",
                "base_url": sandbox.tidsbanken.url,
                "api_key": sandbox.tidsbanken.api_key,
                "subscription_key": sandbox.tidsbanken.subscription_key,
            }
        else:
            block = {"type": "custompms", "base_url": sandbox.custompms.url, "token": sandbox.custompms.token}
        connector = create_connector(system, {**block, **settings})
        made.append(connector)
        return connector

    yield connect
    for connector in made:
        connector.close()
