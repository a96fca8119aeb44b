"""The Ledgerly emulator keeps the contract its definition describes (tests/thirdparty/ledgerly_emulator.py),
so that the end-to-end test in test_ledgerly.py proves the definition, not a lenient server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ledgerly_emulator import CLIENT_ID, CLIENT_SECRET, LedgerlyEmulator


@pytest.fixture
def ledgerly() -> LedgerlyEmulator:
    return LedgerlyEmulator()


@pytest.fixture
def api(ledgerly: LedgerlyEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url="http://ledgerly.test", transport=ledgerly.transport()) as client:
        answer = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                   "client_secret": CLIENT_SECRET, "scope": "contacts"})
        assert answer.status_code == 200 and answer.json()["expires_in"] == 3600
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield client


def test_wrong_client_credentials_are_refused(ledgerly: LedgerlyEmulator) -> None:
    with httpx.Client(base_url="http://ledgerly.test", transport=ledgerly.transport()) as client:
        answer = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                   "client_secret": "nope"})
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")
        assert client.get("/api/v2/contacts").status_code == 401


def test_pages_and_the_strict_modified_after_filter(api: httpx.Client, ledgerly: LedgerlyEmulator) -> None:
    made = [ledgerly.create({"name": f"Kontakt {n}"}) for n in range(5)]
    first = api.get("/api/v2/contacts", params={"per_page": 2}).json()
    assert (len(first["items"]), first["total_pages"], first["next"]) == (2, 3, "/api/v2/contacts?per_page=2&page=2")
    last = api.get("/api/v2/contacts", params={"per_page": 2, "page": 3}).json()
    assert [c["id"] for c in last["items"]] == [made[4]["id"]] and last["next"] is None
    after = api.get("/api/v2/contacts", params={"modified_after": made[2]["modified_at"]}).json()
    assert [c["id"] for c in after["items"]] == [made[3]["id"], made[4]["id"]]  # strictly after


def test_put_needs_the_current_version(api: httpx.Client, ledgerly: LedgerlyEmulator) -> None:
    contact = ledgerly.create({"name": "Fjordbygg AS", "phone": "1"})
    path = f"/api/v2/contacts/{contact['id']}"
    stale = api.put(path, json={"name": "Fjordbygg AS", "version": contact["version"] + 1})
    assert stale.status_code == 412
    answer = api.put(path, json={"name": "Fjordbygg ASA", "version": contact["version"]})
    stored: dict[str, Any] = answer.json()
    assert (answer.status_code, stored["version"], stored["name"]) == (200, 2, "Fjordbygg ASA")
    assert stored["phone"] is None and stored["status"] == "active"  # a PUT replaces the whole contact


def test_refused_fields_are_named_in_details(api: httpx.Client) -> None:
    answer = api.post("/api/v2/contacts", json={"name": "", "org_no": "12", "colour": "blue"})
    assert answer.status_code == 422
    details = {d["property"] for d in answer.json()["error"]["details"]}
    assert details == {"name", "org_no", "colour"}


def test_deleted_contacts_stay_listed_as_tombstones(api: httpx.Client, ledgerly: LedgerlyEmulator) -> None:
    contact = ledgerly.create({"name": "Borte AS"})
    assert api.delete(f"/api/v2/contacts/{contact['id']}").status_code == 204
    assert api.get(f"/api/v2/contacts/{contact['id']}").status_code == 404
    assert api.get("/api/v2/contacts").json()["items"] == []
    [tombstone] = api.get("/api/v2/contacts", params={"include_deleted": "true"}).json()["items"]
    assert tombstone["id"] == contact["id"] and tombstone["deleted_at"]


def test_an_idempotency_key_repeats_the_first_answer(api: httpx.Client, ledgerly: LedgerlyEmulator) -> None:
    first = api.post("/api/v2/contacts", json={"name": "Én gang AS"}, headers={"Idempotency-Key": "k1"}).json()
    again = api.post("/api/v2/contacts", json={"name": "Én gang AS"}, headers={"Idempotency-Key": "k1"}).json()
    assert first == again and len(ledgerly.records()) == 1
