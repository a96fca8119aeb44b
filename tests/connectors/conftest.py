"""Connectors pointed at the emulators in process: each connector's httpx client talks to its emulator
through `transport()` (an `httpx.MockTransport`), so these tests open no socket. The socket server is
tested in tests/sandbox and end to end in tests/sync."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from http_kit import SECRET, Handler, Sleeps

from mapsync.connectors import create_connector
from mapsync.connectors.base import Connector
from mapsync.connectors.http import HttpClient, HttpSettings
from mapsync.sandbox import Sandbox

# Never dialled: every request goes through the emulator's transport.
IN_PROCESS_URL = "http://127.0.0.1"


@pytest.fixture
def make_sandbox() -> Callable[..., Sandbox]:
    """make_sandbox(**Sandbox kwargs) -> a Sandbox whose emulators are served in process, not started.

    Overrides the suite-wide fixture, so `sandbox` and `empty_sandbox` are in process here too."""
    return Sandbox


@pytest.fixture
def connect_to() -> Iterator[Callable[..., Connector]]:
    """connect_to(sandbox, "tidsbanken" | "custompms", **settings) -> a connector, closed afterwards."""
    made: list[Connector] = []

    def connect(sandbox: Sandbox, system: str, **settings: Any) -> Connector:
        if system == "tidsbanken":
            emulator: Any = sandbox.tidsbanken
            block = {
                "type": "tidsbanken",
                "api_key": sandbox.tidsbanken.api_key,
                "subscription_key": sandbox.tidsbanken.subscription_key,
            }
        else:
            emulator = sandbox.custompms
            block = {"type": "custompms", "token": sandbox.custompms.token}
        block["base_url"] = IN_PROCESS_URL
        connector = create_connector(system, {**block, **settings}, transport=emulator.transport())
        made.append(connector)
        return connector

    yield connect
    for connector in made:
        connector.close()


# -- the HTTP layer on a MockTransport (test_http, test_answer) ---------------------------------------

@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., HttpClient]]:
    clients: list[HttpClient] = []

    def make(handler: Handler, **settings: float | int | None) -> HttpClient:
        client = HttpClient(
            "tidsbanken",
            "https://api.example.test",
            headers={"tb-key": SECRET},
            settings=HttpSettings(**settings),  # type: ignore[arg-type]
            auth_hint="check TIDSBANKEN_API_KEY",
            secrets=[SECRET],
            transport=httpx.MockTransport(handler),
            sleep=sleeps,
            backoff=lambda attempt: 0.01 * (attempt + 1),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
