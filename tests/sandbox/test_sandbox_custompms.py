"""The Custompms emulator over real HTTP, against contracts/custompms-api.md."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mapsync.sandbox import InvalidBodyError, Sandbox

UTC_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def create_customers(sandbox: Sandbox, count: int) -> list[str]:
    return [sandbox.custompms.create("customers", {"name": f"Customer {i}"})["id"] for i in range(count)]


def list_all(pms: httpx.Client, limit: int, **params: str) -> tuple[list[dict[str, object]], int]:
    """Every item through the cursor, and the number of pages it took."""
    items: list[dict[str, object]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, str | int] = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        body = pms.get("/api/v1/customers", params=query).json()
        pages += 1
        items += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            assert len(body["data"]) <= limit
            return items, pages
        assert len(body["data"]) == limit


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sandbox-pms-token"}])
def test_wrong_or_missing_token_is_401(empty_sandbox: Sandbox, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=empty_sandbox.custompms.url) as client:
        response = client.get("/api/v1/customers", headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()


def test_unknown_paths_and_methods(pms: httpx.Client) -> None:
    assert pms.get("/api/v1/invoices").status_code == 404
    assert pms.get("/api/v2/customers").status_code == 404
    assert pms.put("/api/v1/customers/c-000001", json={}).status_code == 405


# --- create, read, update, delete ----------------------------------------------------------------------


def test_create_assigns_id_version_and_stamps(pms: httpx.Client) -> None:
    response = pms.post("/api/v1/customers", json={"name": "Fjordbygg AS", "organization_number": "923609016"})
    assert response.status_code == 201
    record = response.json()
    assert record["id"] == "c-000001"
    assert record["version"] == 1
    assert UTC_MILLIS.fullmatch(record["created_at"])
    assert record["updated_at"] == record["created_at"]
    assert (record["kind"], record["active"], record["email"]) == ("customer", True, None)
    assert pms.get(f"/api/v1/customers/{record['id']}").json() == record
    project = pms.post("/api/v1/projects", json={"name": "Tak", "customer_id": record["id"]}).json()
    assert project["id"] == "p-000001"
    assert (project["closed"], project["internal"], project["start_date"]) == (False, False, None)


def test_read_unknown_is_404(pms: httpx.Client) -> None:
    assert pms.get("/api/v1/customers/c-999999").status_code == 404


def test_patch_is_partial_and_bumps_version(pms: httpx.Client) -> None:
    created = pms.post(
        "/api/v1/customers", json={"name": "A", "email": "a@x.no", "postal_address": {"city": "Oslo"}}
    ).json()
    response = pms.patch(f"/api/v1/customers/{created['id']}", json={"name": "B"})
    assert response.status_code == 200
    record = response.json()
    assert (record["name"], record["email"], record["version"]) == ("B", "a@x.no", 2)
    assert record["postal_address"] == {"line1": None, "line2": None, "postal_code": None, "city": "Oslo"}
    assert record["updated_at"] > created["updated_at"]
    assert record["created_at"] == created["created_at"]


def test_if_match_stale_version_is_412(pms: httpx.Client) -> None:
    record_id = pms.post("/api/v1/customers", json={"name": "A"}).json()["id"]
    assert pms.patch(f"/api/v1/customers/{record_id}", json={"name": "B"}, headers={"If-Match": "1"}).status_code == 200
    stale = pms.patch(f"/api/v1/customers/{record_id}", json={"name": "C"}, headers={"If-Match": "1"})
    assert stale.status_code == 412
    assert pms.get(f"/api/v1/customers/{record_id}").json()["name"] == "B"
    quoted = pms.patch(f"/api/v1/customers/{record_id}", json={"name": "C"}, headers={"If-Match": '"2"'})
    assert quoted.status_code == 200


def test_delete_then_404_and_tombstone_only_with_include_deleted(pms: httpx.Client) -> None:
    keep = pms.post("/api/v1/customers", json={"name": "Keep"}).json()["id"]
    gone = pms.post("/api/v1/customers", json={"name": "Gone"}).json()["id"]
    response = pms.delete(f"/api/v1/customers/{gone}")
    assert response.status_code == 204
    assert response.content == b""
    assert pms.get(f"/api/v1/customers/{gone}").status_code == 404
    assert pms.patch(f"/api/v1/customers/{gone}", json={"name": "x"}).status_code == 404
    assert pms.delete(f"/api/v1/customers/{gone}").status_code == 404
    assert [r["id"] for r in pms.get("/api/v1/customers").json()["data"]] == [keep]
    listed = pms.get("/api/v1/customers", params={"include_deleted": "true"}).json()["data"]
    tombstone = listed[-1]
    assert set(tombstone) == {"id", "deleted", "updated_at"}
    assert (tombstone["id"], tombstone["deleted"]) == (gone, True)


def test_patch_unknown_is_404(pms: httpx.Client) -> None:
    assert pms.patch("/api/v1/projects/p-000009", json={"name": "x"}).status_code == 404


# --- idempotency -----------------------------------------------------------------------------------------


def test_repeated_post_with_idempotency_key_answers_200_with_the_first_record(
    pms: httpx.Client, empty_sandbox: Sandbox
) -> None:
    headers = {"Idempotency-Key": "create-k1"}
    first = pms.post("/api/v1/customers", json={"name": "A"}, headers=headers)
    again = pms.post("/api/v1/customers", json={"name": "A"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(empty_sandbox.custompms.records("customers")) == 1
    # keys are per resource, and a different key creates anew
    assert pms.post("/api/v1/projects", json={"name": "P"}, headers=headers).status_code == 201
    assert pms.post("/api/v1/customers", json={"name": "A"}, headers={"Idempotency-Key": "other"}).status_code == 201
    assert len(empty_sandbox.custompms.records("customers")) == 2


# --- validation ------------------------------------------------------------------------------------------


def test_422_lists_every_field_error_at_once(pms: httpx.Client) -> None:
    body = {
        "name": "",
        "id": "c-1",
        "colour": "blue",
        "email": 5,
        "organization_number": "12345",
        "kind": "supplier",
        "postal_address": {"line1": "Storgata 1", "zip": "0150"},
        "delivery_address": {"city": 7},
        "active": "yes",
    }
    response = pms.post("/api/v1/customers", json=body)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {
        "name", "id", "colour", "email", "organization_number", "kind",
        "postal_address.zip", "delivery_address.city", "active",
    }
    assert all(error["message"] for error in response.json()["errors"])


def test_missing_name_and_too_long_name_are_422(pms: httpx.Client) -> None:
    missing = pms.post("/api/v1/customers", json={"email": "x@y.no"})
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["name"]
    assert pms.post("/api/v1/customers", json={"name": "x" * 201}).status_code == 422
    assert pms.post("/api/v1/customers", json={"name": "x" * 200}).status_code == 201


def test_project_dates_and_references(pms: httpx.Client) -> None:
    customer = pms.post("/api/v1/customers", json={"name": "C"}).json()["id"]
    department = pms.post("/api/v1/customers", json={"name": "D", "kind": "department"}).json()["id"]
    bad = pms.post(
        "/api/v1/projects",
        json={"name": "P", "start_date": "2024-02-30", "due_date": "01.03.2024", "customer_id": "c-999999",
              "department_id": customer, "manager_employee_id": "5"},
    )
    assert bad.status_code == 422
    fields = sorted(e["field"] for e in bad.json()["errors"])
    assert fields == ["customer_id", "department_id", "due_date", "manager_employee_id", "start_date"]
    good = pms.post(
        "/api/v1/projects",
        json={"name": "P", "start_date": "2024-03-01", "customer_id": customer, "department_id": department},
    )
    assert good.status_code == 201, good.text
    pms.delete(f"/api/v1/customers/{customer}")
    dangling = pms.patch(f"/api/v1/projects/{good.json()['id']}", json={"customer_id": customer})
    assert dangling.status_code == 422


def test_patch_validates_and_refuses_server_fields(pms: httpx.Client) -> None:
    record_id = pms.post("/api/v1/customers", json={"name": "A"}).json()["id"]
    response = pms.patch(f"/api/v1/customers/{record_id}", json={"version": 7, "name": None})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"version", "name"}


def test_body_not_json_or_not_an_object(pms: httpx.Client) -> None:
    assert pms.post("/api/v1/customers", content=b"nope").status_code == 400
    assert pms.post("/api/v1/customers", json=["a"]).status_code == 422


def test_refuse_predicate(pms: httpx.Client, empty_sandbox: Sandbox) -> None:
    def no_acme(resource: str, body: dict[str, object]) -> str | None:
        return "Acme is blocked" if resource == "customers" and body.get("name") == "Acme" else None

    empty_sandbox.custompms.refuse(no_acme)
    refused = pms.post("/api/v1/customers", json={"name": "Acme", "email": None})
    assert refused.status_code == 422
    assert refused.json() == {"errors": [{"field": "name", "message": "Acme is blocked"}]}
    record_id = pms.post("/api/v1/customers", json={"name": "Other"}).json()["id"]
    assert pms.patch(f"/api/v1/customers/{record_id}", json={"name": "Acme"}).status_code == 422
    empty_sandbox.custompms.refuse(None)
    assert pms.post("/api/v1/customers", json={"name": "Acme"}).status_code == 201


def test_direct_create_validates(empty_sandbox: Sandbox) -> None:
    with pytest.raises(InvalidBodyError) as raised:
        empty_sandbox.custompms.create("customers", {"name": "", "bogus": 1})
    assert {e.field for e in raised.value.errors} == {"name", "bogus"}
    with pytest.raises(KeyError):
        empty_sandbox.custompms.delete("customers", "c-000404")


# --- listing ---------------------------------------------------------------------------------------------


def test_empty_listing(pms: httpx.Client) -> None:
    assert pms.get("/api/v1/customers").json() == {"data": [], "next_cursor": None}


def test_cursor_paging_exact_page_and_short_last_page(pms: httpx.Client, empty_sandbox: Sandbox) -> None:
    ids = create_customers(empty_sandbox, 6)
    items, pages = list_all(pms, 3)
    assert [r["id"] for r in items] == ids
    assert pages == 2  # a full last page still says next_cursor null
    items, pages = list_all(pms, 4)
    assert [r["id"] for r in items] == ids
    assert pages == 2


def test_limit_bounds(pms: httpx.Client) -> None:
    assert pms.get("/api/v1/customers", params={"limit": 500}).status_code == 200
    assert pms.get("/api/v1/customers", params={"limit": 501}).status_code in (400, 422)
    assert pms.get("/api/v1/customers", params={"limit": 0}).status_code in (400, 422)
    assert pms.get("/api/v1/customers", params={"cursor": "%%%"}).status_code == 400
    assert pms.get("/api/v1/customers", params={"updated_since": "2024-05-01T10:00:00"}).status_code == 400


def test_updated_since_is_inclusive(pms: httpx.Client, empty_sandbox: Sandbox) -> None:
    moment = datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)
    empty_sandbox.custompms.clock = lambda: moment
    first = empty_sandbox.custompms.create("customers", {"name": "A"})["id"]
    empty_sandbox.custompms.clock = lambda: moment + timedelta(seconds=1)
    second = empty_sandbox.custompms.create("customers", {"name": "B"})["id"]

    def since(value: str) -> list[str]:
        return [r["id"] for r in pms.get("/api/v1/customers", params={"updated_since": value}).json()["data"]]

    assert since("2024-05-01T10:00:00.500Z") == [first, second]
    assert since("2024-05-01T12:00:00.500+02:00") == [first, second]
    assert since("2024-05-01T10:00:00.501Z") == [second]


def test_records_changed_while_paging_are_not_skipped(pms: httpx.Client, empty_sandbox: Sandbox) -> None:
    ids = create_customers(empty_sandbox, 6)
    first = pms.get("/api/v1/customers", params={"limit": 3}).json()
    # an already-read record and a not-yet-read one change between the pages: both move to the end
    empty_sandbox.custompms.edit("customers", ids[0], name="changed")
    empty_sandbox.custompms.edit("customers", ids[4], name="changed too")
    rest, _ = [], None
    cursor = first["next_cursor"]
    while cursor:
        body = pms.get("/api/v1/customers", params={"limit": 3, "cursor": cursor}).json()
        rest += [r["id"] for r in body["data"]]
        cursor = body["next_cursor"]
    seen = [r["id"] for r in first["data"]] + rest
    assert set(seen) == set(ids)
    assert rest == [ids[3], ids[5], ids[0], ids[4]]


def test_tombstones_page_with_the_cursor(pms: httpx.Client, empty_sandbox: Sandbox) -> None:
    ids = create_customers(empty_sandbox, 5)
    for record_id in ids[:3]:
        empty_sandbox.custompms.delete("customers", record_id)
    live, _ = list_all(pms, 2)
    assert [r["id"] for r in live] == ids[3:]
    everything, _ = list_all(pms, 2, include_deleted="true")
    assert [r["id"] for r in everything] == ids[3:] + ids[:3]
    assert [bool(r.get("deleted")) for r in everything] == [False, False, True, True, True]
    assert len(empty_sandbox.custompms.records("customers", include_deleted=True)) == 5
