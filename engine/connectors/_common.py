"""What every connector built on the shared HTTP layer does alike: counts, closing, entity lookup."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

import httpx

from mapsync.connectors.http import HttpClient, HttpSettings
from mapsync.errors import SpecError

T = TypeVar("T")


class HttpBackedConnector:
    """Base of the built-in connectors: one HttpClient per connection, closed with the connector."""

    system: str  # how messages name the system, e.g. "Tidsbanken"

    def __init__(self, name: str, settings: Mapping[str, Any], *, headers: Mapping[str, str],
                 secrets: Sequence[str], auth_hint: str, transport: httpx.BaseTransport | None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        http_settings = HttpSettings.from_settings(settings)
        self.page_size = http_settings.page_size
        self._http = HttpClient(name, str(settings["base_url"]), headers={**headers, "Accept": "application/json"},
                                settings=http_settings, auth_hint=auth_hint, secrets=tuple(secrets),
                                transport=transport, sleep=sleep)

    def request_counts(self) -> dict[str, int]:
        return self._http.request_counts()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _entity(self, table: Mapping[str, T], entity: str) -> T:
        try:
            return table[entity]
        except KeyError:
            known = ", ".join(sorted(table))
            raise SpecError(f"{self.name}: {self.system} has no entity {entity!r}; known: {known}") from None
