"""HTTP clients for the emulator tests: plain httpx, authenticated, closed at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from mapsync.sandbox import Sandbox


@pytest.fixture
def client_for() -> Iterator[Callable[[Sandbox, str], httpx.Client]]:
    """client_for(sandbox, "tidsbanken" | "custompms") -> an httpx.Client with the right credentials."""
    made: list[httpx.Client] = []

    def make(sandbox: Sandbox, system: str) -> httpx.Client:
        if system == "tidsbanken":
            client = httpx.Client(
                base_url=sandbox.tidsbanken.url,
                headers={
                    "tb-key": sandbox.tidsbanken.api_key,
                    "Ocp-Apim-Subscription-Key": sandbox.tidsbanken.subscription_key,
                    "x-api-version": "3.0",
                },
                timeout=10,
            )
        else:
            client = httpx.Client(
                base_url=sandbox.custompms.url,
                headers={"Authorization": f"Bearer {sandbox.custompms.token}"},
                timeout=10,
            )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def tb(empty_sandbox: Sandbox, client_for: Callable[[Sandbox, str], httpx.Client]) -> httpx.Client:
    return client_for(empty_sandbox, "tidsbanken")


@pytest.fixture
def pms(empty_sandbox: Sandbox, client_for: Callable[[Sandbox, str], httpx.Client]) -> httpx.Client:
    return client_for(empty_sandbox, "custompms")
