"""What every connector built on the shared HTTP layer does alike: counts, closing, entity lookup, item
paths, and telling whether a write whose answer was lost had landed."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx

from mapsync.connectors._paging import parse_timestamp
from mapsync.connectors.http import HttpClient, HttpSettings, RunDeadline
from mapsync.errors import RefusedError, SpecError

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
        self.max_pages = http_settings.max_pages
        headers, secrets = self._credentials(settings)
        self._http = HttpClient(name, str(settings["base_url"]), headers={**headers, "Accept": "application/json"},
                                settings=http_settings, auth_hint=self.AUTH_HINT, secrets=tuple(secrets),
                                transport=transport, sleep=sleep)

    def _credentials(self, settings: Mapping[str, Any]) -> tuple[dict[str, str], Sequence[str]]:
        """The headers that authenticate every request, and the secrets in them (masked in messages)."""
        raise TypeError(f"{type(self).__name__} must say how it authenticates")

    def request_counts(self) -> dict[str, int]:
        return self._http.request_counts()

    def request_status_counts(self) -> dict[str, dict[str, int]]:
        return self._http.request_status_counts()

    def set_run_deadline(self, deadline: RunDeadline | None) -> None:
        """Every request from now on ends by `deadline` (None: only its own request_deadline)."""
        self._http.run_deadline = deadline

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

    def _item_path(self, method: str, collection: str, entity: str, record_id: str) -> str:
        """`<collection>/<id>`, the id percent-encoded; refused before any request when it cannot be one
        path segment (a `.` or `..` would be resolved away, and an empty id names the collection)."""
        if record_id in UNUSABLE_SEGMENTS:
            raise RefusedError(f"{entity} id {record_id!r} cannot be used in a URL path",
                                  connection=self.name, method=method, path=collection)
        return f"{collection}/{quote(record_id, safe='')}"


UNUSABLE_SEGMENTS = frozenset({"", ".", ".."})


def holds_values(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Whether the stored record holds every value that was sent (a write's effect is visible in it)."""
    return all(same_value(stored.get(key), value) for key, value in sent.items())


def same_value(stored: Any, sent: Any) -> bool:
    """Equal as the systems mean it: `""`, null and a missing value alike, objects compared key by key
    (a server may add keys as null), and datetimes by instant (a server may reformat them)."""
    if _blank(stored) and _blank(sent):
        return True
    if isinstance(stored, Mapping) and isinstance(sent, Mapping):
        keys = set(stored) | set(sent)
        return all(same_value(stored.get(key), sent.get(key)) for key in keys)
    if stored == sent:
        return True
    return isinstance(stored, str) and isinstance(sent, str) and _same_instant(stored, sent)


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _same_instant(first: str, second: str) -> bool:
    if "T" not in first or "T" not in second:  # only full datetimes: "12" must not read as a date
        return False
    try:
        return parse_timestamp(first) == parse_timestamp(second)
    except ValueError:
        return False
