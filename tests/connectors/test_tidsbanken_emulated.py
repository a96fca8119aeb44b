"""The Tidsbanken connector against the emulator over loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mapsync.connectors import settings_schema
from mapsync.errors import AuthError, ConnectorError, NotFoundError, RefusedError
from mapsync.sandbox import Faults, SeedSize
from mapsync.spec._schema_errors import schema_problems

MOMENT = datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)


def put_kunder(sandbox, count: int, prefix: str = "K") -> list[str]:
    ids = [f"{prefix}{i:04}" for i in range(count)]
    for rid in ids:
        sandbox.tidsbanken.put("Kunde", {"Id": rid, "Navn": f"Kunde {rid}"})
    return ids


@pytest.mark.parametrize(
    ("count", "page_size", "pages"),
    [(0, 5, 1), (5, 5, 2), (12, 5, 3), (4, 2, 4), (7, 500, 1)],
    ids=["empty", "exactly-one-page", "last-page-short", "smallest-page-size", "one-short-page"],
)
def test_paging_edges(empty_sandbox, connect_to, count: int, page_size: int, pages: int) -> None:
    ids = put_kunder(empty_sandbox, count)
    tb = connect_to(empty_sandbox, "tidsbanken", page_size=page_size)
    assert [change.id for change in tb.list_changes("Kunde", None)] == ids
    # A full page ends with its anchor asked for again (one record of overlap), a short page ends it.
    assert tb.request_counts().get("GET", 0) == pages


def test_a_page_size_that_cannot_hold_the_anchor_is_refused_at_load() -> None:
    block = {"type": "tidsbanken", "base_url": "http://x", "api_key": "k", "subscription_key": "s", "page_size": 1}
    problems = schema_problems(settings_schema("tidsbanken"), block, ("connections", "tidsbanken"))
    assert [(path[-1], message) for path, message in problems] == [("page_size", "1 is less than the minimum of 2")]


def test_records_sharing_the_cursors_instant_are_not_lost(empty_sandbox, connect_to) -> None:
    empty_sandbox.tidsbanken.clock = lambda: MOMENT
    ids = put_kunder(empty_sandbox, 7)
    tb = connect_to(empty_sandbox, "tidsbanken", page_size=3, overlap=0)
    since = "2024-05-01T10:00:00.123Z"  # exactly the instant every record carries
    assert sorted(change.id for change in tb.list_changes("Kunde", since)) == ids
    assert sorted(change.id for change in tb.list_changes("Kunde", None)) == ids


def test_incremental_read_sees_an_edit_after_the_cursor(empty_sandbox, connect_to) -> None:
    put_kunder(empty_sandbox, 5)
    tb = connect_to(empty_sandbox, "tidsbanken", overlap=0)
    cursor = max(change.modified for change in tb.list_changes("Kunde", None))
    edited = empty_sandbox.tidsbanken.edit("Kunde", "K0002", Navn="Nytt navn AS")
    changes = list(tb.list_changes("Kunde", cursor))
    assert [c.id for c in changes][-1] == "K0002"
    assert changes[-1].record is not None and changes[-1].record["Navn"] == "Nytt navn AS"
    assert edited["SistEndretDato"].endswith("+02:00") or edited["SistEndretDato"].endswith("+01:00")


def test_both_timestamp_forms_become_utc_z(make_sandbox, connect_to) -> None:
    sandbox = make_sandbox(seed=SeedSize(avdelinger=2, kunder=2, prosjekter=2))
    tb = connect_to(sandbox, "tidsbanken")
    for entity in ("Avdeling", "Kunde", "Prosjekt"):
        for change in tb.list_changes(entity, None):
            assert change.record is not None
            raw = datetime.fromisoformat(change.record["SistEndretDato"])
            assert change.modified.endswith("Z") and len(change.modified) == len("2024-05-01T10:00:00.123Z")
            assert datetime.fromisoformat(change.modified) == raw.replace(microsecond=raw.microsecond // 1000 * 1000)


def test_a_record_modified_during_the_scan_is_not_lost(empty_sandbox, connect_to) -> None:
    ids = put_kunder(empty_sandbox, 30)
    tb = connect_to(empty_sandbox, "tidsbanken", page_size=5)
    seen: set[str] = set()
    for number, change in enumerate(tb.list_changes("Kunde", None)):
        seen.add(change.id)
        if number in (3, 9, 15):
            # Someone edits records already read: they move to the end, everything else shifts back.
            empty_sandbox.tidsbanken.edit("Kunde", ids[number - 2], Telefon=f"{number}")
            empty_sandbox.tidsbanken.edit("Kunde", ids[0], Telefon=f"{number}")
    assert seen == set(ids)


def test_wrong_key_is_a_clear_auth_error_without_the_key(empty_sandbox, connect_to) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken", api_key="wrong-key-value-123")
    with pytest.raises(AuthError) as info:
        tb.check()
    message = str(info.value)
    assert "GET /ansatt/avdeling -> 401" in message
    assert "TIDSBANKEN_API_KEY" in message
    assert "wrong-key-value-123" not in message
    assert empty_sandbox.tidsbanken.api_key not in message
    assert tb.request_counts() == {"GET": 1}  # a 401 is not retried


def test_create_read_update_round_trip(empty_sandbox, connect_to) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken")
    avdeling = tb.create("Avdeling", {"Navn": "Salg", "Avdelingsleder": None}, idempotency_key="A-1")
    assert avdeling["Id"] == "A-1" and avdeling["SistEndretDato"].endswith("Z")
    patched = tb.update("Avdeling", "A-1", {"Navn": "Salg Nord"}, current=avdeling)
    assert patched["Navn"] == "Salg Nord"

    kunde = tb.create("Kunde", {"Id": "K'1", "Navn": "Acme", "Telefon": "123"}, idempotency_key="ignored")
    assert tb.read("Kunde", "K'1") == kunde
    updated = tb.update("Kunde", "K'1", {"Navn": "Acme AS"}, current=kunde)
    assert (updated["Navn"], updated["Telefon"]) == ("Acme AS", "123")

    prosjekt = tb.create("Prosjekt", {"Id": "P1", "Navn": "Bygg", "KundeId": "K'1"}, idempotency_key="x")
    assert tb.read("Prosjekt", "P1") == prosjekt
    changed = tb.update("Prosjekt", "P1", {"Avsluttet": True}, current=prosjekt)
    assert changed["Avsluttet"] is True and changed["KundeId"] == "K'1"
    assert tb.read("Prosjekt", "nope") is None and tb.read("Kunde", "nope") is None
    assert tb.read("Avdeling", "A-1") == patched


def test_create_of_an_existing_id_returns_the_stored_record(empty_sandbox, connect_to) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken")
    first = tb.create("Kunde", {"Navn": "Acme"}, idempotency_key="K-9")
    again = tb.create("Kunde", {"Navn": "Acme"}, idempotency_key="K-9")
    assert again == first
    assert len(empty_sandbox.tidsbanken.records("Kunde")) == 1


def test_update_of_an_unknown_id_and_bad_bodies(empty_sandbox, connect_to) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken")
    with pytest.raises(NotFoundError):
        tb.update("Kunde", "nope", {"Navn": "x"}, current={"Id": "nope", "Navn": "y"})
    with pytest.raises(RefusedError) as info:
        tb.create("Kunde", {"Navn": "x", "Ukjent": 1}, idempotency_key="K-1")
    assert info.value.status == 400 and "Ukjent" in str(info.value)
    with pytest.raises(ConnectorError, match="no delete"):
        tb.delete("Kunde", "K-1")


@pytest.mark.parametrize(
    "faults",
    [
        Faults(rate_429=0.3, retry_after=0, seed=3),
        Faults(rate_503=0.3, seed=4),
        Faults(rate_drop=0.3, seed=5),
    ],
    ids=["429", "503", "drop"],
)
def test_transient_faults_are_retried_without_duplicates(empty_sandbox, connect_to, faults) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken", max_retries=8)
    empty_sandbox.set_faults(faults)
    for i in range(10):
        tb.create("Kunde", {"Navn": f"Kunde {i}"}, idempotency_key=f"K-{i}")
    listed = [change.id for change in tb.list_changes("Kunde", None)]
    empty_sandbox.set_faults(Faults())
    assert sorted(listed) == [f"K-{i}" for i in range(10)]
    assert len(empty_sandbox.tidsbanken.records("Kunde")) == 10
    assert empty_sandbox.tidsbanken.request_count > 11  # 10 creates and 1 page, plus the faulted ones


def test_a_create_whose_answer_is_dropped_yields_one_record(empty_sandbox, connect_to) -> None:
    tb = connect_to(empty_sandbox, "tidsbanken", max_retries=10)
    empty_sandbox.set_faults(Faults(rate_drop_after_write=0.5, seed=11))
    stored = [tb.create("Kunde", {"Navn": f"Kunde {i}"}, idempotency_key=f"K-{i}") for i in range(8)]
    empty_sandbox.set_faults(Faults())
    assert [record["Id"] for record in stored] == [f"K-{i}" for i in range(8)]
    assert len(empty_sandbox.tidsbanken.records("Kunde")) == 8
    assert tb.request_counts()["POST"] > 8  # some answers really were dropped


def test_listing_with_a_window_reaches_back_by_the_overlap(empty_sandbox, connect_to) -> None:
    empty_sandbox.tidsbanken.clock = lambda: MOMENT
    put_kunder(empty_sandbox, 2)
    empty_sandbox.tidsbanken.clock = lambda: MOMENT + timedelta(seconds=30)
    put_kunder(empty_sandbox, 2, prefix="L")
    tb = connect_to(empty_sandbox, "tidsbanken", overlap=60)
    since = "2024-05-01T10:00:30.123Z"
    assert sorted(change.id for change in tb.list_changes("Kunde", since)) == ["K0000", "K0001", "L0000", "L0001"]
    narrow = connect_to(empty_sandbox, "tidsbanken", overlap=5)
    assert sorted(change.id for change in narrow.list_changes("Kunde", since)) == ["L0000", "L0001"]
