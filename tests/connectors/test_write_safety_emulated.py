"""Both connectors against the emulators: writes whose answer was lost, ids that cannot be a path segment,
and listings whose paging never ends."""

from __future__ import annotations

import pytest

from mapsync.errors import ConflictError, PagingError, PreconditionFailedError, RefusedError
from mapsync.sandbox import Faults

# With this seed the first request's answer is lost after the server stored it, and the retry is answered.
DROP_FIRST_ANSWER = Faults(rate_drop_after_write=0.5, seed=1)


# -- lost answers ---------------------------------------------------------------------------------------

def test_custompms_patch_whose_answer_was_lost_is_a_success(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms")
    customer = pms.create("Customer", {"name": "Acme"}, idempotency_key="k")
    empty_sandbox.custompms.faults = DROP_FIRST_ANSWER
    stored = pms.update("Customer", customer["id"], {"name": "Acme AS"}, current=customer)
    assert empty_sandbox.custompms.faults_injected["drop_after_write"] == 1
    assert stored == empty_sandbox.custompms.get("customers", customer["id"])
    assert stored["name"] == "Acme AS" and stored["version"] == 2
    # the retry met 412; the record was read again instead of being written a third time
    assert pms.request_counts() == {"POST": 1, "PATCH": 2, "GET": 1}


def test_custompms_412_on_a_record_changed_by_someone_else_stays_a_failure(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms")
    customer = pms.create("Customer", {"name": "Acme"}, idempotency_key="k")
    empty_sandbox.custompms.edit("customers", customer["id"], name="Changed elsewhere")
    with pytest.raises(PreconditionFailedError, match="412: the record changed since it was read"):
        pms.update("Customer", customer["id"], {"name": "Mine"}, current=customer)
    assert empty_sandbox.custompms.get("customers", customer["id"])["name"] == "Changed elsewhere"


def test_custompms_412_holding_our_values_and_another_change_keeps_the_old_version(empty_sandbox,
                                                                                     connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms")
    customer = pms.create("Customer", {"name": "Acme"}, idempotency_key="k")
    empty_sandbox.custompms.edit("customers", customer["id"], name="Acme AS", email="else@example.no")
    stored = pms.update("Customer", customer["id"], {"name": "Acme AS"}, current=customer)
    # Our value is there, so no failure; but the other writer's e-mail must not pass for synced: the answer
    # is the record as our write alone left it, with the version read before, so the next run looks again.
    assert stored["name"] == "Acme AS" and stored["email"] is None
    assert (stored["version"], stored["updated_at"]) == (customer["version"], customer["updated_at"])


def test_tidsbanken_create_whose_answer_was_lost_finds_its_record(empty_sandbox, connect_to) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken")
    empty_sandbox.tidsbanken.faults = DROP_FIRST_ANSWER
    stored = tb.create("Prosjekt", {"Navn": "Nytt", "StartDato": "2024-03-01T00:00:00+01:00"},
                       idempotency_key="mapsync-p-1")
    assert stored == empty_sandbox.tidsbanken.get("Prosjekt", "mapsync-p-1")
    assert tb.request_counts() == {"POST": 2, "GET": 1}
    assert len(empty_sandbox.tidsbanken.records("Prosjekt")) == 1


def test_tidsbanken_create_meeting_another_record_with_its_id_is_a_conflict(empty_sandbox, connect_to) -> None:
    empty_sandbox.tidsbanken.put("Kunde", {"Id": "K1", "Navn": "Someone else's"})
    tb = connect_to(empty_sandbox, "tidsbanken")
    with pytest.raises(ConflictError, match="409"):
        tb.create("Kunde", {"Id": "K1", "Navn": "Ours"}, idempotency_key="k")
    assert empty_sandbox.tidsbanken.get("Kunde", "K1")["Navn"] == "Someone else's"


# -- ids are data, never paths ----------------------------------------------------------------------------

@pytest.mark.parametrize("record_id", ["", ".", ".."])
def test_ids_that_are_no_path_segment_are_refused_before_any_request(empty_sandbox, connect_to,
                                                                      record_id: str) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken")
    pms = connect_to(empty_sandbox, "custompms")
    message = f"id {record_id!r} cannot be used in a URL path"
    calls = [
        lambda: tb.update("Avdeling", record_id, {"Navn": "x"}, current={"Id": record_id}),
        lambda: tb.create("Avdeling", {"Id": record_id, "Navn": "x"}, idempotency_key=record_id),
        lambda: pms.read("Customer", record_id),
        lambda: pms.update("Customer", record_id, {"name": "x"}, current={"id": record_id, "version": 1}),
        lambda: pms.delete("Project", record_id),
    ]
    for call in calls:
        with pytest.raises(RefusedError, match=message):
            call()
    assert empty_sandbox.tidsbanken.request_count == 0
    assert empty_sandbox.custompms.request_count == 0


def test_other_ids_stay_percent_encoded_in_one_segment(empty_sandbox, connect_to) -> None:
    empty_sandbox.tidsbanken.put("Avdeling", {"Id": "../a/.", "Navn": "Skråstrek"})
    tb = connect_to(empty_sandbox, "tidsbanken")
    stored = tb.update("Avdeling", "../a/.", {"Navn": "Ny"}, current={"Id": "../a/."})
    assert stored["Navn"] == "Ny"
    assert set(empty_sandbox.tidsbanken.requests) == {("PATCH", "/ansatt/Avdeling/../a/.")}


# -- endless paging ---------------------------------------------------------------------------------------

def test_tidsbanken_listing_whose_pages_never_end_stops_at_max_pages(empty_sandbox, connect_to) -> None:
    empty_sandbox.tidsbanken.endless_paging = {"Prosjekt"}
    tb = connect_to(empty_sandbox, "tidsbanken", page_size=4, max_pages=5)
    with pytest.raises(PagingError) as info:
        list(tb.list_changes("Prosjekt", None))
    assert str(info.value) == ("tidsbanken: GET /prosjekt/Prosjekt: listing Prosjekt stopped after 5 pages "
                               "(max_pages); the server's paging never ends")
    assert tb.request_counts() == {"GET": 5}


def test_custompms_listing_with_a_fresh_cursor_every_time_stops_at_max_pages(empty_sandbox, connect_to) -> None:
    for number in range(5):
        empty_sandbox.custompms.create("projects", {"name": f"P{number}"})
    empty_sandbox.custompms.endless_paging = {"projects"}
    pms = connect_to(empty_sandbox, "custompms", page_size=2, max_pages=7)
    with pytest.raises(PagingError, match=r"GET /api/v1/projects: listing Project stopped after 7 pages \(max_pages\)"):
        list(pms.list_changes("Project", None))
    assert pms.request_counts() == {"GET": 7}


def test_a_listing_of_exactly_max_pages_is_complete(empty_sandbox, connect_to) -> None:
    for number in range(5):
        empty_sandbox.custompms.create("projects", {"name": f"P{number}"})
    pms = connect_to(empty_sandbox, "custompms", page_size=2, max_pages=3)
    assert len(list(pms.list_changes("Project", None))) == 5
