"""Issue 9, end to end: a write stored by the server whose answer was lost is a success once the record
shows it; a record really changed by someone else between read and write still fails, alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from e2e_expect import assert_in_sync, assert_no_duplicates
from sync_harness import Harness, all_links, write_requests

from mapsync.sandbox import Faults
from mapsync.sandbox._http import Request, Response

SEEDS = (1, 2, 3, 4, 5, 6)


def one_request_at_a_time(h: Harness) -> None:
    """One worker: the requests, and so which of them a seeded fault hits, come in the same order every run."""
    h.set_connection("tidsbanken", concurrency=1, rate_limit=1000)
    h.set_connection("custompms", concurrency=1, rate_limit=1000)


def edit_both_sides(h: Harness, round_: int) -> int:
    """Edit records on both sides (PATCH and PUT on Custompms and Tidsbanken); the number of writes it takes."""
    kunder = h.sb.tidsbanken.records("Kunde")
    avdelinger = h.sb.tidsbanken.records("Avdeling")
    kunde_links, avdeling_links = h.links("kunde-customer"), h.links("avdeling-customer")
    for kunde in kunder[:8]:  # -> PATCH /api/v1/customers/{id}
        h.sb.tidsbanken.edit("Kunde", kunde["Id"], Telefon=f"9{round_:02}{kunde['Id'][-5:]}")
    for kunde in kunder[8:12]:  # -> PUT /prosjekt/Kunde
        h.sb.custompms.edit("customers", kunde_links[kunde["Id"]], email=f"r{round_}.{kunde['Id']}@example.no")
    h.sb.custompms.edit("customers", avdeling_links[avdelinger[0]["Id"]], name=f"Avdeling runde {round_}")
    return 8 + 4 + 1  # the last one: PATCH /ansatt/Avdeling/{Id}


def dropped_writes(h: Harness) -> int:
    return sum(server.faults_injected["drop_after_write"] for server in (h.sb.tidsbanken, h.sb.custompms))


def lost_pms_patches(h: Harness, edits: int) -> int:
    """PATCHes to Custompms beyond one per edited Kunde: each retried a write whose answer was lost."""
    return sum(n for (system, method, _), n in write_requests(h).items()
               if (system, method) == ("custompms", "PATCH")) - edits


def test_writes_whose_answers_were_lost_end_in_a_clean_run(make_harness: Callable[..., Harness],
                                                           sqlite_url: str) -> None:
    hs = make_harness(sqlite_url, socket=True)  # the answers are lost on real connections
    one_request_at_a_time(hs)
    assert hs.apply().exit_code == 0
    exit_codes, lost_patches = {}, {}
    for round_, seed in enumerate(SEEDS):
        writes = edit_both_sides(hs, round_)
        hs.sb.tidsbanken.reset_counts()
        hs.sb.custompms.reset_counts()
        hs.sb.set_faults(Faults(rate_drop_after_write=0.1, retry_after=0, seed=seed))
        run = hs.apply()
        hs.sb.set_faults(Faults())
        exit_codes[seed] = run.exit_code
        lost_patches[seed] = lost_pms_patches(hs, 8)
        assert run.counts()["failed"] == 0, run.output
        # every edit written once, plus one retry per answer lost: no write made to repair anything
        assert hs.writes() == writes + dropped_writes(hs), seed
        settled = hs.writes()
        again = hs.apply()
        assert again.exit_code == 0 and hs.writes() == settled, f"seed {seed}: the next run still writes"
    assert exit_codes == dict.fromkeys(SEEDS, 0)
    # Some seeds lose answers to Custompms PATCHes (today seeds 1 to 3: 4, 1 and 2 of them), whose retries
    # met 412: before issue 9 exactly those runs exited 1. (Which request a seed hits moves whenever a run's
    # requests change, so the test only insists that some did.)
    assert sum(lost_patches.values()) > 0, lost_patches
    assert list(hs.store().iter_dead_letters()) == []
    assert_no_duplicates(hs.sb)
    assert_in_sync(hs.sb, all_links(hs))


def edit_when_read(h: Harness, path: str, *, before_write: bool = False, **changes: Any) -> Callable[[], None]:
    """Someone edits the Customer in Custompms right after mapsync has read it, before it writes (with
    `before_write`, just before its write arrives: mapsync writes with the version it remembers from its
    last sync and reads nothing first); returns a function that puts the emulator back."""
    server = h.sb.custompms
    original = server.handle
    customer_id = path.rsplit("/", 1)[1]
    done = []

    def handle(request: Request) -> Response:
        if before_write and request.method == "PATCH" and request.path == path and not done:
            done.append(True)
            server.edit("customers", customer_id, **changes)
        response = original(request)
        if not before_write and request.method == "GET" and request.path == path and not done:
            done.append(True)
            server.edit("customers", customer_id, **changes)
        return response

    server.handle = handle
    return lambda: delattr(server, "handle")


def test_a_record_changed_between_read_and_write_fails_alone_and_merges_next_run(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    first, second = hs.sb.tidsbanken.records("Kunde")[:2]
    customer_id = hs.links("kunde-customer")[first["Id"]]
    hs.sb.tidsbanken.edit("Kunde", first["Id"], Navn="Endret i Tidsbanken AS")
    hs.sb.tidsbanken.edit("Kunde", second["Id"], Navn="Også endret AS")
    restore = edit_when_read(hs, f"/api/v1/customers/{customer_id}", before_write=True,
                             email="endret@pms.example")

    run = hs.apply()
    restore()
    assert run.exit_code == 1
    assert run.counts("kunde-customer")["failed"] == 1
    assert run.counts("kunde-customer")["updated"] == 1
    assert f"Kunde {first['Id']}: custompms: PATCH /api/v1/customers/{customer_id} -> 412: " \
           "the record changed since it was read" in run.output
    assert hs.sb.custompms.get("customers", customer_id)["name"] == first["Navn"]  # nothing overwritten
    assert hs.sb.custompms.get("customers", hs.links("kunde-customer")[second["Id"]])["name"] == "Også endret AS"
    failed = hs.cli("links", "failed")
    assert first["Id"] in failed.stdout and "412" in failed.stdout

    merged = hs.apply()
    assert merged.exit_code == 0, merged.output
    assert hs.sb.custompms.get("customers", customer_id)["name"] == "Endret i Tidsbanken AS"
    assert hs.sb.tidsbanken.get("Kunde", first["Id"])["Epost"] == "endret@pms.example"
    assert_in_sync(hs.sb, all_links(hs))
