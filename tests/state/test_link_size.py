"""Links are stored lean (half the bytes or less) and read back exactly, on both backends; rows
written before the lean format are still read."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest

from mapsync.errors import StateError
from mapsync.sandbox import SeedSize
from mapsync.sandbox.seed import generate
from mapsync.state import Link, StateStore
from mapsync.state._compact import layout_id
from mapsync.state._migrations import MIGRATIONS
from mapsync.state._sql import SqlStore
from mapsync.state.base import RetiredLink
from mapsync.state.postgres import PostgresStore, split_url
from mapsync.state.sqlite import SqliteStore

# kunde-customer's rows: Kunde property -> Customer path (the widest reference dataflow)
KUNDE_ROWS = {
    "Navn": "name", "Organisasjonsnummer": "organization_number", "Gateadresse": "postal_address.line1",
    "Postadresse": "postal_address.line2", "Postnr": "postal_address.postal_code",
    "Poststed": "postal_address.city", "Leveringsadresse": "delivery_address.line1",
    "Leveringsadresse2": "delivery_address.line2", "LevPostNr": "delivery_address.postal_code",
    "LevPoststed": "delivery_address.city", "Telefon": "phone", "Mobil": "mobile", "Epost": "email",
    "Url": "website", "Aktiv": "active",
}


def kunde_links(count: int) -> list[Link]:
    kunder = generate(SeedSize(avdelinger=1, kunder=count, prosjekter=0), 1).kunder
    links = []
    for number, kunde in enumerate(kunder):
        values = {path: (kunde.get(prop) or None) if prop != "Aktiv" else bool(kunde.get(prop))
                  for prop, path in KUNDE_ROWS.items()}
        links.append(Link("kunde-customer", kunde["Id"], f"c-{number:06d}", values, dict(values),
                          kunde["SistEndretDato"], "2026-11-26T10:00:00.123456Z"))
    return links


def bytes_per_link(store: StateStore, count: int) -> float:
    assert isinstance(store, SqlStore)
    if isinstance(store, SqliteStore):
        path = store.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            size = db.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = 'links' OR name LIKE "
                              "'sqlite_autoindex_links_%'").fetchone()[0]
        return float(size) / count
    assert isinstance(store, PostgresStore)
    server, schema = split_url(store.url)
    with psycopg.connect(server) as conn:
        size = conn.execute(f"SELECT pg_total_relation_size('{schema}.links')").fetchone()
    assert size is not None
    return float(size[0]) / count


def test_a_link_takes_half_of_what_it_did(store: StateStore) -> None:
    links = kunde_links(2000)
    store.put_links(links)
    # The widest reference dataflow: about 1,000 bytes a link on both backends with both sides' values as
    # JSON objects; now about 410 (SQLite) and 480 (PostgreSQL), its own values being some 200 of them.
    limit = 450 if isinstance(store, SqliteStore) else 520
    assert bytes_per_link(store, len(links)) < limit


ODD_VALUES: dict[str, Any] = {"name": "Ærlig Øl & Å-bryggeri", "empty": "", "none": None, "yes": True,
                              "no": False, "count": 3, "share": 0.25, "nested": {"b": [1, None], "a": "x"}}


def test_values_read_back_exactly_whether_the_sides_agree_or_not(store: StateStore) -> None:
    agree = Link("d", "S1", "T1", dict(ODD_VALUES), dict(ODD_VALUES), "v1", "v2", "ok")
    differ = Link("d", "S2", "T2", dict(ODD_VALUES), {**ODD_VALUES, "name": "Other", "extra": 1}, None, None,
                  "conflict")
    nothing = Link("d", "S3", "T3")
    store.put_links([agree, differ])
    store.put_link(nothing)
    store.retire_link(RetiredLink.of(differ, gone="target"))
    found = {link.source_id: link for link in store.get_links("d", source_ids=["S1", "S2", "S3"])}
    for expected in (agree, differ, nothing):
        link = found[expected.source_id]
        assert (link.source_values, link.target_values) == (expected.source_values, expected.target_values)
        assert (link.source_version, link.target_version, link.state) == \
            (expected.source_version, expected.target_version, expected.state)
    [retired] = store.retired_by_source("d", ["S2"])
    assert (retired.source_values, retired.target_values) == (differ.source_values, differ.target_values)


def open_with(url: str, migrations: Any) -> SqlStore:
    if url.startswith("sqlite"):
        return SqliteStore.open(url, migrations=migrations)
    return PostgresStore.open(url, migrations=migrations)


def test_links_written_before_the_lean_format_are_read_after_the_upgrade(store_url: str) -> None:
    values = {"name": "Gammel AS", "active": True}
    with open_with(store_url, MIGRATIONS[:5]) as old:
        old._write("INSERT INTO links (dataflow, source_id, target_id, source_values, target_values, "
                   "source_version, target_version, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   ("d", "S1", "T1", '{"active":true,"name":"Gammel AS"}',
                    '{"active":true,"name":"Gammel AS"}', "v1", "v2", "ok", "2026-01-01T00:00:00+00:00"))
    with open_with(store_url, MIGRATIONS) as store:
        link = store.link_by_source("d", "S1")
        assert link is not None and (link.source_values, link.target_values) == (values, values)
        store.put_link(link)  # written lean from now on
        again = store.link_by_source("d", "S1")
        assert again is not None and (again.source_values, again.target_values) == (values, values)


def test_a_layout_digest_naming_other_keys_is_refused(store: StateStore) -> None:
    assert isinstance(store, SqlStore)
    keys = ["name", "active"]
    store._write("INSERT INTO value_layouts (id, keys) VALUES (?, ?)", (layout_id(keys), '["other"]'))
    with pytest.raises(StateError, match="already names other keys"):
        store.put_link(Link("d", "S1", "T1", {"name": "X", "active": True}, {"name": "X", "active": True}))
