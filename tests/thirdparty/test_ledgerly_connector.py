"""The Ledgerly definition run by the generic connector in process (no socket, no CLI): every request the
definition describes, against the emulator's strict contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledgerly_emulator import CLIENT_ID, CLIENT_SECRET, LedgerlyEmulator

from mapsync.connectors.base import Connector
from mapsync.connectors.declarative.factories import workspace_factory
from mapsync.errors import AuthError, RefusedError

DEFINITION = Path(__file__).parent / "workspace" / "connectors" / "ledgerly.yaml"


@pytest.fixture
def ledgerly() -> LedgerlyEmulator:
    return LedgerlyEmulator()


def connect(ledgerly: LedgerlyEmulator, **settings: object) -> Connector:
    block = {"definition": str(DEFINITION), "base_url": "http://ledgerly.test", "client_id": CLIENT_ID,
             "client_secret": CLIENT_SECRET, "page_size": 2, **settings}
    return workspace_factory("ledgerly", block, transport=ledgerly.transport())


@pytest.fixture
def contacts(ledgerly: LedgerlyEmulator) -> Iterator[Connector]:
    connector = connect(ledgerly)
    yield connector
    connector.close()


def test_lists_every_page_with_one_token(contacts: Connector, ledgerly: LedgerlyEmulator) -> None:
    made = [ledgerly.create({"name": f"Kontakt {n}"}) for n in range(5)]
    listed = list(contacts.list_changes("Contact", None))
    assert [change.id for change in listed] == [m["id"] for m in made]
    assert ledgerly.requests[("GET", "/api/v2/contacts")] == 3 and ledgerly.token_requests == 1


def test_create_update_delete(contacts: Connector, ledgerly: LedgerlyEmulator) -> None:
    stored = contacts.create("Contact", {"name": "Ny AS", "status": "active"}, idempotency_key="k-1")
    again = contacts.create("Contact", {"name": "Ny AS", "status": "active"}, idempotency_key="k-1")
    assert again["id"] == stored["id"] and len(ledgerly.records()) == 1
    updated = contacts.update("Contact", stored["id"], {"phone": "123"}, current=stored)
    assert (updated["version"], updated["phone"], updated["name"]) == (2, "123", "Ny AS")  # whole PUT kept name
    contacts.delete("Contact", stored["id"])
    [tombstone] = list(contacts.list_changes("Contact", None))
    assert tombstone.id == stored["id"] and tombstone.deleted


def test_a_refused_record_names_its_properties(contacts: Connector) -> None:
    with pytest.raises(RefusedError) as raised:
        contacts.create("Contact", {"name": "", "org_no": "1"}, idempotency_key="k-2")
    assert {error.field for error in raised.value.field_errors} == {"name", "org_no"}


def test_wrong_client_secret_names_the_settings_never_the_secret(ledgerly: LedgerlyEmulator) -> None:
    connector = connect(ledgerly, client_secret="not-the-secret")
    with pytest.raises(AuthError) as raised:
        connector.check()
    connector.close()
    assert "client_id, client_secret" in str(raised.value) and "not-the-secret" not in str(raised.value)
