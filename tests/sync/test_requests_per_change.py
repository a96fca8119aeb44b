"""Issue 13 item 3: a run with N changed records costs the listing pages plus N writes. An update writes
with the concurrency token the link remembers (from the listing or from the answer to mapsync's own write)
and reads the record only when the server answers 412, or when the write needs properties mapsync does not
keep (a whole-record PUT, a nested object only partly mapped)."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from e2e_expect import assert_in_sync
from sync_harness import REPO, Harness, all_links

from mapsync.errors import StateError
from mapsync.sandbox import SeedSize
from mapsync.sandbox._http import Request, Response
from mapsync.state import Link
from mapsync.sync import runner

LISTINGS = {"/ansatt/avdeling", "/prosjekt/Kunde", "/prosjekt/Prosjekt", "/api/v1/customers", "/api/v1/projects"}
SIZE = SeedSize(avdelinger=3, kunder=40, prosjekter=10)


def requests_by_kind(h: Harness) -> Counter[str]:
    """Requests since the last reset: listing GETs apart from the GETs of one record, writes by method."""
    counts: Counter[str] = Counter()
    for server in (h.sb.tidsbanken, h.sb.custompms):
        for (method, path), n in server.requests.items():
            counts["list" if method == "GET" and path in LISTINGS else method] += n
    return counts


def reset_counts(h: Harness) -> None:
    h.sb.tidsbanken.reset_counts()
    h.sb.custompms.reset_counts()


@pytest.fixture
def synced(make_harness: Callable[..., Harness], sqlite_url: str) -> Harness:
    h = make_harness(sqlite_url, seed=SIZE)
    assert h.apply().exit_code == 0
    reset_counts(h)
    return h


def test_changed_records_cost_the_listing_and_one_patch_each(synced: Harness) -> None:
    h = synced
    kunder = h.sb.tidsbanken.records("Kunde")[:4]
    for kunde in kunder:  # Kunde -> Customer: a PATCH with If-Match, the Customer not listed in this run
        h.sb.tidsbanken.edit("Kunde", kunde["Id"], Navn=f"{kunde['Navn']} endret", Telefon="99887766")
    run = h.apply()
    assert run.exit_code == 0, run.output
    counts = requests_by_kind(h)
    assert counts["PATCH"] == len(kunder)
    assert counts["GET"] == 0, counts  # no read before a write: the version remembered from the last sync
    customers = h.links("kunde-customer")
    for kunde in kunder:
        stored = h.sb.custompms.get("customers", customers[kunde["Id"]])
        assert stored["name"] == f"{kunde['Navn']} endret" and stored["phone"] == "99887766"

    reset_counts(h)  # and again: the version the link keeps is the one the PATCH answered
    for kunde in kunder:
        h.sb.tidsbanken.edit("Kunde", kunde["Id"], Telefon="11223344")
    assert h.apply().exit_code == 0
    assert (requests_by_kind(h)["PATCH"], requests_by_kind(h)["GET"]) == (len(kunder), 0)
    assert_in_sync(h.sb, all_links(h))


def test_a_whole_record_put_still_reads_the_record_it_replaces(synced: Harness) -> None:
    """Tidsbanken's PUT replaces the whole Kunde (a property left out gets its default): the link keeps only
    the mapped properties, so a Kunde not in this run's listing is read first, and nothing else is cleared."""
    h = synced
    customers = h.links("kunde-customer")
    kunde_id = next(iter(customers))
    before = h.sb.tidsbanken.get("Kunde", kunde_id)
    assert before is not None
    h.sb.custompms.edit("customers", customers[kunde_id], email="ny@kunde.example")
    assert h.apply().exit_code == 0
    counts = requests_by_kind(h)
    assert (counts["PUT"], counts["GET"]) == (1, 1), counts
    after = h.sb.tidsbanken.get("Kunde", kunde_id)
    assert after is not None and after["Epost"] == "ny@kunde.example"
    assert {k: v for k, v in after.items() if k not in {"Epost", "SistEndretDato"}} == \
        {k: v for k, v in before.items() if k not in {"Epost", "SistEndretDato"}}


def test_a_partly_mapped_address_is_read_before_it_is_sent_whole(synced: Harness) -> None:
    """avdeling-customer maps three of postal_address's four lines: a changed Adresse sends the object
    whole, so the Customer is read first and its line2 kept; a changed Navn alone needs no read."""
    h = synced
    departments = h.links("avdeling-customer")
    first, second = list(departments)[:2]
    h.sb.custompms.edit("customers", departments[first],
                        postal_address={"line1": "x", "line2": "Bakgården", "postal_code": "0150", "city": "Oslo"})
    assert h.apply().exit_code == 0  # flows back to the Avdeling
    reset_counts(h)
    h.sb.tidsbanken.edit("Avdeling", first, Adresse="Ny gate 2")
    h.sb.tidsbanken.edit("Avdeling", second, Navn="Nytt navn")
    assert h.apply().exit_code == 0
    counts = requests_by_kind(h)
    assert (counts["PATCH"], counts["GET"]) == (2, 1), counts
    address = h.sb.custompms.get("customers", departments[first])["postal_address"]
    assert address == {"line1": "Ny gate 2", "line2": "Bakgården", "postal_code": "0150", "city": "Oslo"}


def test_a_stale_version_meets_412_and_is_written_once_more_after_a_read(synced: Harness) -> None:
    """Someone changed a property the dataflow does not map: the remembered version is stale, the PATCH
    answers 412, the Customer is read (its mapped values are as the link has them) and written again."""
    h = synced
    departments = h.links("avdeling-customer")
    avdeling_id, later = list(departments)[:2]
    h.sb.custompms.edit("customers", departments[avdeling_id], website="https://unmapped.example")
    h.sb.custompms.edit("customers", departments[later], website="https://later.example")  # moves the cursor on
    assert h.apply().exit_code == 0  # listed, in sync: the link is not written, its version is now stale
    reset_counts(h)
    h.sb.tidsbanken.edit("Avdeling", avdeling_id, Navn="Etter 412")
    run = h.apply()
    assert run.exit_code == 0, run.output
    counts = requests_by_kind(h)
    assert (counts["PATCH"], counts["GET"]) == (2, 1), counts
    stored = h.sb.custompms.get("customers", departments[avdeling_id])
    assert (stored["name"], stored["website"]) == ("Etter 412", "https://unmapped.example")
    reset_counts(h)
    h.sb.tidsbanken.edit("Avdeling", avdeling_id, Navn="Etter 412 igjen")
    assert h.apply().exit_code == 0
    assert (requests_by_kind(h)["PATCH"], requests_by_kind(h)["GET"]) == (1, 0)  # the link learned the version


def test_a_mapped_change_behind_a_stale_version_fails_alone_and_merges_next_run(synced: Harness) -> None:
    """The protection stays: a Customer whose mapped property someone changed since the last sync (and
    after this run listed Custompms) is not overwritten; the next run merges both changes."""
    h = synced
    customers = h.links("kunde-customer")
    kunde_id = next(iter(customers))
    h.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Endret i Tidsbanken AS")
    server = h.sb.custompms
    original = server.handle
    edited: list[bool] = []

    def handle(request: Request) -> Response:  # the edit lands after the listing, before the PATCH
        if request.method == "PATCH" and not edited:
            edited.append(True)
            server.edit("customers", customers[kunde_id], email="endret@pms.example")
        return original(request)

    server.handle = handle  # type: ignore[method-assign]
    try:
        run = h.apply()
    finally:
        del server.handle
    assert run.exit_code == 1 and run.counts("kunde-customer")["failed"] == 1
    assert "412" in run.output
    assert server.get("customers", customers[kunde_id])["name"] != "Endret i Tidsbanken AS"
    assert h.apply().exit_code == 0
    assert server.get("customers", customers[kunde_id])["name"] == "Endret i Tidsbanken AS"
    assert h.sb.tidsbanken.get("Kunde", kunde_id)["Epost"] == "endret@pms.example"
    assert_in_sync(h.sb, all_links(h))


def test_the_worker_count_honours_a_definitions_default_concurrency(
        make_harness: Callable[..., Harness], sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `concurrency` in the connection block: the definition's `defaults.concurrency` sets the writes in
    flight, for the HTTP layer and for the executor's workers alike."""
    h = make_harness(sqlite_url, seed=SeedSize(avdelinger=2, kunder=3, prosjekter=2))
    for system, concurrency in (("tidsbanken", 2), ("custompms", 3)):
        folder = h.ws / "connectors" / system
        shutil.copytree(REPO / "schemas" / system, folder)
        definition = yaml.safe_load((folder / "connector.yaml").read_text(encoding="utf-8"))
        definition["defaults"]["concurrency"] = concurrency
        (folder / "connector.yaml").write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
        config = yaml.safe_load(h.config.read_text(encoding="utf-8"))
        block = config["connections"][system]
        del block["concurrency"]
        block.update(type="definition", definition=f"connectors/{system}/connector.yaml")
        h.config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    workers: list[int] = []

    class Counted(runner.Executor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            workers.append(self.workers)

    monkeypatch.setattr(runner, "Executor", Counted)
    run = h.apply()
    assert run.exit_code == 0, run.output
    assert workers == [3, 3, 3]  # per dataflow, the larger of its two sides'


def test_the_link_keeps_each_sides_token_beside_its_change_marker(synced: Harness) -> None:
    h = synced
    store = h.store()
    for link in store.iter_links("kunde-customer"):
        customer = h.sb.custompms.get("customers", link.target_id)
        assert link.target_token == customer["version"] and link.source_token is None  # Tidsbanken has none
        assert link.target_version is not None and link.target_version.startswith(customer["updated_at"][:19])
    odd = Link("d", "S1", "T1", {"name": "x"}, {"name": "x"}, None, "2026-01-01T00:00:00+00:00",
               source_token='W/"a|b"', target_token=7)
    store.put_link(odd)
    again = store.link_by_source("d", "S1")
    assert again is not None
    assert (again.source_version, again.source_token, again.target_version, again.target_token) == \
        (None, 'W/"a|b"', "2026-01-01T00:00:00+00:00", 7)
    with pytest.raises(StateError, match="cannot hold"):
        store.put_link(Link("d", "S2", "T2", source_version="a|b"))
