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

    SETTINGS_SCHEMA: dict[str, Any]
    AUTH_HINT: str  # which settings to check when the server refuses the credentials

    def __init__(self, name: str, settings: Mapping[str, Any], *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        http_settings = HttpSettings.from_settings(settings)
        self.page_size = http_settings.page_size
        headers, secrets = self._credentials(settings)
        self._http = HttpClient(name, str(settings["base_url"]), headers={**headers, "Accept": "application/json"},
                                settings=http_settings, auth_hint=self.AUTH_HINT, secrets=tuple(secrets),
                                transport=transport, sleep=sleep)

    def _credentials(self, settings: Mapping[str, Any]) -> tuple[dict[str, str], Sequence[str]]:
        """The headers that authenticate every request, and the secrets in them (masked in messages)."""
        raise TypeError(f"{type(self).__name__} must say how it authenticates")

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
