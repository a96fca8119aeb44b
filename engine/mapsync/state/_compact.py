"""Links stored lean: what each link's row holds, encoded and decoded by the store.

A link keeps both sides' last-synced values ({target path: canonical value}), every value the three-way
merge needs. Stored as JSON objects, the keys (long paths such as `delivery_address.postal_code`) made up
most of a row, and twice, once per side. So:

- each side's values are a JSON array `[layout, v1, v2, ...]`: `layout` names the keys, in order, kept once
  in `value_layouts` (its id is a digest of the keys, so every process derives the same id alone);
- the target side's values, after a sync nearly always equal to the source side's, are stored as `null`
  when equal (and as their own array when not);
- a side's concurrency token (`Link.*_token`) shares its change marker's column, after a `|`, as JSON
  (`2026-05-01T10:00:00.123000+00:00|17`): a few bytes, no column of its own, and a marker never holds a `|`.

Rows written before (JSON objects) are read as they are and written lean the next time the link changes.
The layouts a batch uses are upserted in the batch's own transaction, so a row never names a layout the
database does not hold, even after a rollback.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from mapsync.errors import StateError
from mapsync.state._rows import Row, encode_json
from mapsync.state.base import Link, RetiredLink, Token, Values

PUT_LAYOUT = "INSERT INTO value_layouts (id, keys) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
# The target side's values when they equal the source side's.
SAME_AS_SOURCE = "null"
# Between a side's change marker and its concurrency token, in the marker's column.
TOKEN_MARK = "|"


def layout_id(keys: Sequence[str]) -> str:
    """The layout's id: a digest of its keys in order (10 hex digits; a collision is detected, not assumed
    away, see _check_layout)."""
    return hashlib.sha256(encode_json(list(keys)).encode("utf-8")).hexdigest()[:10]


class CompactLinksMixin(ABC):
    """Encodes and decodes the rows of `links` and `retired_links` for `SqlStore`."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]: ...

    def _layouts_init(self) -> None:
        self._layout_keys: dict[str, tuple[str, ...]] = {}  # id -> keys, as read or written
        self._layout_of: dict[tuple[str, ...], str] = {}  # keys -> id
        self._layouts_checked: set[str] = set()  # ids known to name these keys in the database

    # -- writing --------------------------------------------------------------------------------------

    def _pack(self, values: Values, used: set[tuple[str, ...]]) -> str:
        keys = tuple(values)
        ident = self._layout_of.get(keys)
        if ident is None:
            ident = self._layout_of[keys] = layout_id(keys)
            self._layout_keys[ident] = keys
        used.add(keys)
        return encode_json([ident, *values.values()])

    def _link_rows(self, links: Iterable[Link], stamp: str) -> list[Row]:
        """The links' rows, after making sure every layout they name is stored (in the caller's transaction)."""
        used: set[tuple[str, ...]] = set()
        rows = [self._link_row(link, stamp, used) for link in links]
        self._store_layouts(used)
        return rows

    def _link_row(self, link: Link, stamp: str, used: set[tuple[str, ...]]) -> Row:
        source = self._pack(link.source_values, used)
        target = SAME_AS_SOURCE if link.target_values == link.source_values else self._pack(link.target_values, used)
        return (link.dataflow, link.source_id, link.target_id, source, target,
                pack_version(link.source_version, link.source_token),
                pack_version(link.target_version, link.target_token), link.state, stamp)

    def _retired_row(self, retired: RetiredLink, retired_at: str) -> Row:
        # The link's own columns but its state and stamp, then why and when it was retired.
        return (*self._link_rows([retired], "")[0][:-2], retired.gone, retired_at)

    def _store_layouts(self, used: set[tuple[str, ...]]) -> None:
        if not used:
            return
        with self.transaction():
            self._write_many(PUT_LAYOUT, [(self._layout_of[keys], encode_json(list(keys))) for keys in used])
            for keys in used:
                self._check_layout(self._layout_of[keys], keys)

    def _check_layout(self, ident: str, keys: tuple[str, ...]) -> None:
        """Two key lists with one digest would mix up values: refuse rather than store it."""
        if ident in self._layouts_checked:
            return
        rows = self._query("SELECT keys FROM value_layouts WHERE id = ?", (ident,))
        if rows and tuple(json.loads(rows[0][0])) != keys:
            raise StateError(f"value layout {ident} already names other keys than {list(keys)}")
        self._layouts_checked.add(ident)

    # -- reading --------------------------------------------------------------------------------------

    def _unpack(self, text: str, same: Values | None = None) -> Values:
        data = json.loads(text)
        if data is None and same is not None:
            return dict(same)
        if isinstance(data, dict):
            return data  # written before links were stored lean
        if isinstance(data, list) and data and isinstance(data[0], str):
            keys = self._keys_of(data[0])
            if len(keys) == len(data) - 1:
                return dict(zip(keys, data[1:], strict=True))
        raise StateError(f"stored link values are not readable: {text[:80]!r}")

    def _keys_of(self, ident: str) -> tuple[str, ...]:
        keys = self._layout_keys.get(ident)
        if keys is None:
            rows = self._query("SELECT keys FROM value_layouts WHERE id = ?", (ident,))
            if not rows:
                raise StateError(f"stored link values name an unknown value layout {ident!r}")
            keys = self._layout_keys[ident] = tuple(json.loads(rows[0][0]))
            self._layout_of.setdefault(keys, ident)
            self._layouts_checked.add(ident)
        return keys

    def _row_to_link(self, row: Row) -> Link:
        dataflow, source_id, target_id, source_text, target_text, sv, tv, state, updated_at = row
        source_values = self._unpack(source_text)
        (source_version, source_token), (target_version, target_token) = unpack_version(sv), unpack_version(tv)
        return Link(dataflow, source_id, target_id, source_values, self._unpack(target_text, source_values),
                    source_version, target_version, state, updated_at, source_token, target_token)

    def _row_to_retired(self, row: Row) -> RetiredLink:
        retired = RetiredLink.of(self._row_to_link((*row[:-2], "ok", "")), gone=row[-2])
        retired.retired_at = row[-1]
        return retired


def pack_version(marker: str | None, token: Token) -> str | None:
    """A side's change marker and concurrency token in one column: `marker|token` (the token as JSON)."""
    if marker is not None and TOKEN_MARK in marker:
        raise StateError(f"a change marker cannot hold {TOKEN_MARK!r}: {marker[:80]!r}")
    if token is None:
        return marker
    return f"{marker or ''}{TOKEN_MARK}{encode_json(token)}"


def marker_of(text: str | None) -> str | None:
    """The change marker of a column written by pack_version, its token left unread."""
    return None if text is None else (text.partition(TOKEN_MARK)[0] or None)


def unpack_version(text: str | None) -> tuple[str | None, Token]:
    """The change marker and concurrency token of a column written by pack_version (or before tokens were kept).
    A token that cannot be read is dropped: the update then reads the record first, as it did without one."""
    if text is None or TOKEN_MARK not in text:
        return text, None
    marker, _, token_text = text.partition(TOKEN_MARK)
    try:
        token = json.loads(token_text)
    except ValueError:
        token = None
    if isinstance(token, bool) or not isinstance(token, str | int):
        token = None
    return marker or None, token
