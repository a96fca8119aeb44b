"""One pager per paging kind of a definition: each knows the next page's request and when a listing ends.

The loop guards of `_paging` stop a server that answers the same page or cursor again; `PageCap` (in the
reader) stops one whose pages never end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx

from mapsync.connectors._paging import CursorPaging, KeysetPaging, LoopGuard
from mapsync.connectors.declarative.definition import Paging
from mapsync.connectors.declarative.requests import search
from mapsync.errors import PagingError

Key = tuple[str, datetime]  # a listed record's id and modified moment
Filter = Callable[[datetime | None], dict[str, str]]  # the incremental filter's parameters for a lower bound


class Pager(Protocol):
    @property
    def finished(self) -> bool: ...

    def next_request(self) -> tuple[str | None, dict[str, str]]:
        """The URL to follow (None: the list path) and the query parameters of the next page."""

    def accept(self, body: Any, response: httpx.Response, keys: Sequence[Key]) -> list[int]:
        """Take one page's answer; return the indexes of its records to yield."""


class _Single:
    """paging: none: one answer holds every record."""

    def __init__(self, params: dict[str, str]) -> None:
        self.finished = False
        self._params = params

    def next_request(self) -> tuple[str | None, dict[str, str]]:
        return None, self._params

    def accept(self, body: Any, response: httpx.Response, keys: Sequence[Key]) -> list[int]:
        self.finished = True
        return list(range(len(keys)))


class _Counted:
    """offset and page_number paging: a page shorter than asked for is the last one."""

    def __init__(self, paging: Paging, params: dict[str, str], size: int, connection: str, path: str) -> None:
        self.finished = False
        self._paging = paging
        self._params = params
        self._size = size
        self._offset = 0
        self._page = paging.first_page
        self._guard = LoopGuard(connection, path)

    def next_request(self) -> tuple[str | None, dict[str, str]]:
        params = dict(self._params)
        if self._paging.kind == "offset":
            params[str(self._paging.offset_param)] = str(self._offset)
        else:
            params[str(self._paging.page_param)] = str(self._page)
        return None, params

    def accept(self, body: Any, response: httpx.Response, keys: Sequence[Key]) -> list[int]:
        self._guard.check_page([record_id for record_id, _ in keys])
        self._offset += len(keys)
        self._page += 1
        self.finished = len(keys) < self._size or not keys
        return list(range(len(keys)))


class _Cursor:
    """cursor paging: a token from the body asks for the next page; none (or empty) ends the listing."""

    def __init__(self, paging: Paging, params: dict[str, str], connection: str, path: str) -> None:
        self._paging = paging
        self._params = params
        self._pager = CursorPaging(connection, path)
        self._connection = connection
        self._path = path

    @property
    def finished(self) -> bool:
        return self._pager.finished

    def next_request(self) -> tuple[str | None, dict[str, str]]:
        if self._pager.cursor is None:
            return None, self._params
        return None, {**self._params, str(self._paging.cursor_param): self._pager.cursor}

    def accept(self, body: Any, response: httpx.Response, keys: Sequence[Key]) -> list[int]:
        token = search(self._paging.next, body)
        if isinstance(token, int | float) and not isinstance(token, bool):
            token = str(token)
        if not (token is None or isinstance(token, str)):
            raise PagingError(f"malformed page: the next cursor at `{self._paging.next}` is not text or null",
                              connection=self._connection, method="GET", path=self._path)
        self._pager.advance([record_id for record_id, _ in keys], token)
        return list(range(len(keys)))


class _NextLink:
    """next_link paging: a URL in the body (or the Link header's rel=next) is the next page, as it is."""

    def __init__(self, paging: Paging, params: dict[str, str], base_url: httpx.URL, connection: str,
                 path: str) -> None:
        self.finished = False
        self._paging = paging
        self._params = params
        self._base_url = base_url
        self._next: str | None = None
        self._guard = LoopGuard(connection, path)
        self._connection = connection
        self._path = path

    def next_request(self) -> tuple[str | None, dict[str, str]]:
        return (None, self._params) if self._next is None else (self._next, {})

    def accept(self, body: Any, response: httpx.Response, keys: Sequence[Key]) -> list[int]:
        self._guard.check_page([record_id for record_id, _ in keys])
        link = search(self._paging.next, body) if self._paging.next else response.links.get("next", {}).get("url")
        if link is None or link == "":
            self.finished = True
            return list(range(len(keys)))
        if not isinstance(link, str):
            raise self._error(f"the next link at `{self._paging.next}` is not text")
        target = response.request.url.join(link)
        if (target.scheme, target.host, target.port) != (self._base_url.scheme, self._base_url.host,
                                                          self._base_url.port):
            # The credentials travel with every request: never to a host the connection does not name.
            raise self._error(f"the next link leads to another host ({target.host}); stopping")
        self._guard.check_cursor(str(target))
        self._next = str(target)
        return list(range(len(keys)))

    def _error(self, message: str) -> PagingError:
        return PagingError(f"malformed page: {message}", connection=self._connection, method="GET", path=self._path)


class _Keyset:
    """keyset paging: offset paging re-anchored on the modified timestamp (see `_paging.KeysetPaging`)."""

    def __init__(self, paging: Paging, params: dict[str, str], size: int, after: datetime | None, *,
                 window: Filter, connection: str, path: str) -> None:
        self._paging = paging
        self._params = params
        self._size = size
        self._window = window
        self._pager = KeysetPaging(size, after, connection=connection, path=path)

    @property
    def finished(self) -> bool:
        return self._pager.finished

    def next_request(self) -> tuple[str | None, dict[str, str]]:
        request = self._pager.next_request()
        params = {**self._window(request.after), str(self._paging.size_param): str(self._size),
                  str(self._paging.offset_param): str(request.skip)}
        return None, {**params, **self._params}

    def accept(self, body: Any, response: httpx.Response, keys: Sequence[Key]) -> list[int]:
        return self._pager.accept(keys)


def make_pager(paging: Paging, params: dict[str, str], *, size: int, after: datetime | None, window: Filter,
               base_url: httpx.URL, connection: str, path: str) -> Pager:
    """The pager of one listing. `params` holds the list request's own parameters; the others are added
    here: the page size, and (except for keyset paging, which moves it) the filter from `after`."""
    if paging.kind == "keyset":
        return _Keyset(paging, params, size, after, window=window, connection=connection, path=path)
    params = {**params, **window(after)}
    if paging.size_param:
        params[paging.size_param] = str(size)
    if paging.kind in ("offset", "page_number"):
        return _Counted(paging, params, size, connection, path)
    if paging.kind == "cursor":
        return _Cursor(paging, params, connection, path)
    if paging.kind == "next_link":
        return _NextLink(paging, params, base_url, connection, path)
    return _Single(params)
