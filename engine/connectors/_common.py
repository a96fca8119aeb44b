"""What every connector built on the shared HTTP layer does alike: counts, closing, entity lookup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self, TypeVar

from mapsync.connectors.http import HttpClient
from mapsync.errors import SpecError

T = TypeVar("T")


class HttpBackedConnector:
    """Base of the built-in connectors: one HttpClient per connection, closed with the connector."""

    name: str
    system: str  # how messages name the system, e.g. "Tidsbanken"
    _http: HttpClient

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
