"""The Custompms connector against the emulator over loopback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from mapsync.errors import AuthError, PreconditionFailedError, RefusedError
from mapsync.sandbox import Faults


def create_customers(sandbox, count: int) -> list[str]:
    return [sandbox.custompms.create("customers", {"name": f"Customer {i}"})["id"] for i in range(count)]


@pytest.mark.parametrize(("count", "page_size"), [(0, 5), (5, 5), (12, 5), (3, 1)])
def test_paging_edges(empty_sandbox, connect_to, count: int, page_size: int) -> None:
    ids = create_customers(empty_sandbox, count)
    pms = connect_to(empty_sandbox, "custompms", page_size=page_size)
    assert [change.id for change in pms.list_changes("Customer", None)] == ids


def test_updated_since_is_inclusive(empty_sandbox, connect_to) -> None:
    create_customers(empty_sandbox, 4)
    pms = connect_to(empty_sandbox, "custompms")
    changes = list(pms.list_changes("Customer", None))
    third = changes[2]
    assert [c.id for c in pms.list_changes("Customer", third.modified)] == [c.id for c in changes[2:]]
    assert all(c.modified.endswith("Z") for c in changes)


def test_tombstones(empty_sandbox, connect_to) -> None:
    ids = create_customers(empty_sandbox, 3)
    empty_sandbox.custompms.delete("customers", ids[1])
    pms = connect_to(empty_sandbox, "custompms")
    changes = {change.id: change for change in pms.list_changes("Customer", None)}
    assert changes[ids[1]].deleted is True and changes[ids[1]].record is None
    assert changes[ids[0]].deleted is False and changes[ids[0]].record is not None


def test_create_update_delete_round_trip(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms")
    customer = pms.create("Customer", {"name": "Acme", "kind": "customer", "email": None}, idempotency_key="k1")
    assert pms.read("Customer", customer["id"]) == customer
    updated = pms.update("Customer", customer["id"], {"name": "Acme AS"}, current=customer)
    assert (updated["name"], updated["version"]) == ("Acme AS", customer["version"] + 1)
    project = pms.create("Project", {"name": "Bygg", "customer_id": customer["id"]}, idempotency_key="k2")
    pms.delete("Project", project["id"])
    pms.delete("Project", project["id"])  # already gone is fine
    assert pms.read("Project", project["id"]) is None


def test_repeated_idempotency_key_creates_once(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms")
    first = pms.create("Customer", {"name": "Acme"}, idempotency_key="same")
    again = pms.create("Customer", {"name": "Acme"}, idempotency_key="same")
    assert again["id"] == first["id"]
    assert len(empty_sandbox.custompms.records("customers")) == 1


def test_stale_if_match_is_a_precondition_error(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms")
    customer = pms.create("Customer", {"name": "Acme"}, idempotency_key="k")
    empty_sandbox.custompms.edit("customers", customer["id"], name="Changed elsewhere")
    with pytest.raises(PreconditionFailedError) as info:
        pms.update("Customer", customer["id"], {"name": "Mine"}, current=customer)
    assert info.value.status == 412
    assert pms.request_counts()["PATCH"] == 1


def test_422_carries_the_servers_field_errors(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms")
    with pytest.raises(RefusedError) as info:
        pms.create("Customer", {"name": 42, "colour": "red"}, idempotency_key="k")
    fields = {error.field for error in info.value.field_errors}
    assert {"name", "colour"} <= fields
    assert info.value.status == 422
    assert pms.request_counts() == {"POST": 1}


def test_wrong_token_is_a_clear_auth_error_without_the_token(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms", token="not-the-token-42")
    with pytest.raises(AuthError) as info:
        pms.check()
    message = str(info.value)
    assert "GET /api/v1/customers -> 401" in message and "CUSTOMPMS_TOKEN" in message
    assert "not-the-token-42" not in message


@pytest.mark.parametrize(
    "faults",
    [
        Faults(rate_429=0.3, retry_after=0, seed=3),
        Faults(rate_503=0.3, seed=4),
        Faults(rate_drop=0.3, seed=5),
        Faults(rate_drop_after_write=0.4, seed=6),
    ],
    ids=["429", "503", "drop", "drop-after-write"],
)
def test_faults_are_retried_without_duplicated_writes(empty_sandbox, connect_to, faults) -> None:
    pms = connect_to(empty_sandbox, "custompms", max_retries=10, page_size=3)
    empty_sandbox.set_faults(faults)
    created = [pms.create("Customer", {"name": f"C{i}"}, idempotency_key=f"key-{i}") for i in range(8)]
    listed = [change.id for change in pms.list_changes("Customer", None)]
    empty_sandbox.set_faults(Faults())
    assert len(empty_sandbox.custompms.records("customers")) == 8
    assert sorted(listed) == sorted(record["id"] for record in created)
    assert empty_sandbox.custompms.request_count > len(listed) // 3 + 8


def test_one_connector_is_safe_to_share_between_threads(empty_sandbox, connect_to) -> None:
    pms = connect_to(empty_sandbox, "custompms", concurrency=3)

    def create(i: int) -> str:
        return str(pms.create("Customer", {"name": f"C{i}"}, idempotency_key=f"key-{i}")["id"])

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(create, range(24)))
    assert len(set(ids)) == 24
    assert len(empty_sandbox.custompms.records("customers")) == 24
    assert pms.request_counts() == {"POST": 24}
