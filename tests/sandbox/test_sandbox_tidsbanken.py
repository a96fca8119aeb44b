"""The Tidsbanken emulator over real HTTP, against contracts/tidsbanken-api.md."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mapsync.sandbox import Sandbox

UTC_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
OSLO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0[12]:00")


def fixed_clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def put_kunder(sandbox: Sandbox, count: int) -> list[str]:
    ids = [f"K{i:03d}" for i in range(count)]
    for record_id in ids:
        sandbox.tidsbanken.put("Kunde", {"Id": record_id, "Navn": f"Kunde {record_id}"})
    return ids


# --- authentication ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"tb-key": "wrong", "Ocp-Apim-Subscription-Key": "sandbox-subscription-key"},
        {"tb-key": "sandbox-tb-key"},
        {"tb-key": "sandbox-tb-key", "Ocp-Apim-Subscription-Key": "wrong"},
    ],
)
def test_wrong_or_missing_keys_answer_401_with_an_error(empty_sandbox: Sandbox, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=empty_sandbox.tidsbanken.url) as client:
        response = client.get("/prosjekt/Kunde", headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()


def test_unknown_path_is_404(tb: httpx.Client) -> None:
    assert tb.get("/prosjekt/Nothing").status_code == 404


# --- listing and paging ----------------------------------------------------------------------------------


def test_empty_listing_has_odata_context_and_no_values(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    body = tb.get("/prosjekt/Kunde").json()
    assert body == {"@odata.context": f"{empty_sandbox.tidsbanken.url}/$metadata#Kunde", "value": []}


def test_paging_exactly_one_page_then_empty(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    put_kunder(empty_sandbox, 3)
    first = tb.get("/prosjekt/Kunde", params={"$top": 3}).json()["value"]
    assert len(first) == 3
    assert tb.get("/prosjekt/Kunde", params={"$top": 3, "$skip": 3}).json()["value"] == []


def test_paging_last_page_is_short_and_order_is_modified_then_id(
    tb: httpx.Client, empty_sandbox: Sandbox
) -> None:
    ids = put_kunder(empty_sandbox, 7)
    seen: list[str] = []
    for skip in range(0, 9, 3):
        page = tb.get("/prosjekt/Kunde", params={"$top": 3, "$skip": skip, "$select": "*"}).json()["value"]
        seen += [record["Id"] for record in page]
    assert seen == ids  # put in order, so stamps increase
    assert len(tb.get("/prosjekt/Kunde", params={"$top": 3, "$skip": 6}).json()["value"]) == 1


def test_default_top_is_100(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    put_kunder(empty_sandbox, 120)
    assert len(tb.get("/prosjekt/Kunde").json()["value"]) == 100


def test_equal_timestamps_sort_by_id(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    empty_sandbox.tidsbanken.clock = fixed_clock(datetime(2024, 5, 1, 10, tzinfo=UTC))
    for record_id in ("K3", "K1", "K2"):
        empty_sandbox.tidsbanken.put("Kunde", {"Id": record_id, "Navn": record_id})
    page = tb.get("/prosjekt/Kunde").json()["value"]
    assert [r["Id"] for r in page] == ["K1", "K2", "K3"]


def test_gt_is_strict_and_compares_instants(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    moment = datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    empty_sandbox.tidsbanken.clock = fixed_clock(moment)
    empty_sandbox.tidsbanken.put("Kunde", {"Id": "K1", "Navn": "Same instant"})
    empty_sandbox.tidsbanken.clock = fixed_clock(moment + timedelta(milliseconds=1))
    empty_sandbox.tidsbanken.put("Kunde", {"Id": "K2", "Navn": "One ms later"})

    def after(cursor: str) -> list[str]:
        response = tb.get("/prosjekt/Kunde", params={"$filter": f"SistEndretDato gt {cursor}"})
        assert response.status_code == 200, response.text
        return [r["Id"] for r in response.json()["value"]]

    assert after("2024-05-01T10:00:00.123Z") == ["K2"]
    assert after("2024-05-01T12:00:00.123+02:00") == ["K2"]  # the same instant, local form
    assert after("2024-05-01T10:00:00.122Z") == ["K1", "K2"]
    assert after("2024-05-01T10:00:00.124Z") == []


def test_filter_by_id_and_combined(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    empty_sandbox.tidsbanken.put("Kunde", {"Id": "O'Brien", "Navn": "Quote"})
    put_kunder(empty_sandbox, 2)
    page = tb.get("/prosjekt/Kunde", params={"$filter": "Id eq 'O''Brien'"}).json()["value"]
    assert [r["Id"] for r in page] == ["O'Brien"]
    combined = "SistEndretDato gt 2100-01-01T00:00:00Z AND Id eq 'K000'"
    assert tb.get("/prosjekt/Kunde", params={"$filter": combined}).json()["value"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "SistEndretDato gt 2024-05-01T10:00:00"},  # no zone
        {"$filter": "SistEndretDato gt 2024-05-01T10:00:00 02:00"},  # a bare + read as a space
        {"$filter": "Navn eq 'x'"},
        {"$top": "501"},
        {"$top": "-1"},
        {"$skip": "abc"},
    ],
)
def test_bad_listing_parameters_answer_400(tb: httpx.Client, params: dict[str, str]) -> None:
    response = tb.get("/prosjekt/Kunde", params=params)
    assert response.status_code == 400
    assert "error" in response.json()


def test_bare_plus_in_raw_query_is_refused(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    raw = f"{empty_sandbox.tidsbanken.url}/prosjekt/Kunde?$filter=SistEndretDato%20gt%202024-05-01T10:00:00+02:00"
    assert tb.get(raw).status_code == 400
    encoded = raw.replace("+02:00", "%2B02:00")
    assert tb.get(encoded).status_code == 200


def test_top_500_is_allowed(tb: httpx.Client) -> None:
    assert tb.get("/prosjekt/Kunde", params={"$top": 500}).status_code == 200


def test_removed_record_vanishes_from_listing_and_lookup(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    put_kunder(empty_sandbox, 2)
    empty_sandbox.tidsbanken.remove("Kunde", "K000")
    assert [r["Id"] for r in tb.get("/prosjekt/Kunde").json()["value"]] == ["K001"]
    assert tb.get("/prosjekt/Kunde('K000')").status_code == 404


# --- lookups and timestamps ------------------------------------------------------------------------------


def test_key_lookup_answers_bare_record_or_404(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    empty_sandbox.tidsbanken.put("Kunde", {"Id": "K 1/ø'x", "Navn": "Odd id"})
    response = tb.get("/prosjekt/Kunde('K%201%2F%C3%B8''x')")
    assert response.status_code == 200
    assert response.json()["Navn"] == "Odd id"
    assert tb.get("/prosjekt/Kunde('nope')").status_code == 404
    empty_sandbox.tidsbanken.put("Prosjekt", {"Id": "P1", "Navn": "P"})
    empty_sandbox.tidsbanken.put("Avdeling", {"Id": "A1", "Navn": "A"})
    assert tb.get("/prosjekt/Prosjekt('P1')").json()["Id"] == "P1"
    assert tb.get("/ansatt/avdeling('A1')").json()["Id"] == "A1"
    assert tb.get("/ansatt/Avdeling('A1')").json()["Id"] == "A1"


def test_avdeling_stamps_are_utc_z_and_kunde_stamps_local_with_offset(tb: httpx.Client) -> None:
    avdeling = tb.post("/ansatt/Avdeling", json={"Id": "A1", "Navn": "Salg Oslo"}).json()
    kunde = tb.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "Fjordbygg AS"}).json()
    prosjekt = tb.post("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "Tak"}).json()
    assert UTC_MILLIS.fullmatch(avdeling["SistEndretDato"])
    assert UTC_MILLIS.fullmatch(avdeling["OpprettetDato"])
    assert OSLO_MILLIS.fullmatch(kunde["SistEndretDato"])
    assert OSLO_MILLIS.fullmatch(prosjekt["OpprettetDato"])


def test_summer_and_winter_offsets(empty_sandbox: Sandbox) -> None:
    tidsbanken = empty_sandbox.tidsbanken
    tidsbanken.clock = fixed_clock(datetime(2024, 7, 1, 10, 0, tzinfo=UTC))
    assert tidsbanken.put("Kunde", {"Id": "K1", "Navn": "S"})["SistEndretDato"] == "2024-07-01T12:00:00.000+02:00"
    tidsbanken.clock = fixed_clock(datetime(2024, 1, 15, 10, 0, 0, 999999, tzinfo=UTC))
    assert tidsbanken.put("Kunde", {"Id": "K2", "Navn": "W"})["SistEndretDato"] == "2024-01-15T11:00:00.999+01:00"


def test_default_clock_is_strictly_increasing(empty_sandbox: Sandbox) -> None:
    stamps = [empty_sandbox.tidsbanken.put("Avdeling", {"Id": f"A{i}", "Navn": "x"})["SistEndretDato"]
              for i in range(20)]
    assert stamps == sorted(set(stamps))


# --- inserts -------------------------------------------------------------------------------------------


def test_insert_fills_defaults_and_answers_201(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    response = tb.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "Fjordbygg AS"})
    assert response.status_code == 201
    record = response.json()
    assert record["Aktiv"] is True
    assert record["Epost"] == ""
    assert record == empty_sandbox.tidsbanken.get("Kunde", "K1")
    prosjekt = tb.post("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "Tak"}).json()
    assert prosjekt["KundeId"] is None
    assert prosjekt["Avsluttet"] is False
    assert prosjekt["InterntProsjekt"] is False
    avdeling = tb.post("/ansatt/Avdeling", json={"Id": "A1", "Navn": "Salg"}).json()
    assert avdeling["Synlig"] is True
    assert avdeling["Avdelingsleder"] is None


def test_insert_existing_id_is_409(tb: httpx.Client) -> None:
    assert tb.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "A"}).status_code == 201
    response = tb.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "B"})
    assert response.status_code == 409
    assert "error" in response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"Id": "K1", "Navn": "A", "Epost": None},  # null in an insert
        {"Id": "K1", "Navn": "A", "Farge": "blå"},  # unknown property
        {"Id": "K1", "Navn": "A", "Aktiv": "yes"},  # wrong type
        {"Id": "K1", "Navn": 5},
        {"Navn": "no id"},
        {"Id": "", "Navn": "empty id"},
    ],
)
def test_bad_insert_bodies_answer_400(tb: httpx.Client, empty_sandbox: Sandbox, body: dict[str, object]) -> None:
    response = tb.post("/prosjekt/Kunde", json=body)
    assert response.status_code == 400, response.text
    assert "error" in response.json()
    assert empty_sandbox.tidsbanken.records("Kunde") == []


def test_prosjekt_bad_types_answer_400(tb: httpx.Client) -> None:
    assert tb.post("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "A", "AnsvarligId": "12"}).status_code == 400
    assert tb.post("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "A", "AnsvarligId": True}).status_code == 400
    assert tb.post("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "A", "StartDato": "2024-03-01"}).status_code == 400
    ok = tb.post("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "A", "StartDato": "2024-03-01T00:00:00+01:00"})
    assert ok.status_code == 201


def test_server_fields_in_a_body_are_ignored(tb: httpx.Client) -> None:
    body = {"Id": "K1", "Navn": "A", "SistEndretDato": "2000-01-01T00:00:00Z", "OpprettetDato": "x"}
    record = tb.post("/prosjekt/Kunde", json=body).json()
    assert not record["SistEndretDato"].startswith("2000")


def test_not_json_is_400(tb: httpx.Client) -> None:
    assert tb.post("/prosjekt/Kunde", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert tb.post("/prosjekt/Kunde", json=[1, 2]).status_code == 400


# --- updates -------------------------------------------------------------------------------------------


def test_put_replaces_the_whole_record(tb: httpx.Client, empty_sandbox: Sandbox) -> None:
    created = tb.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "A", "Epost": "a@x.no", "Aktiv": False}).json()
    response = tb.put("/prosjekt/Kunde", json={"Id": "K1", "Navn": "B"})
    assert response.status_code == 200
    record = response.json()
    assert record["Navn"] == "B"
    assert record["Epost"] == ""  # missing properties reset to defaults
    assert record["Aktiv"] is True
    assert record["OpprettetDato"] == created["OpprettetDato"]
    assert record["SistEndretDato"] > created["SistEndretDato"]
    assert empty_sandbox.tidsbanken.get("Kunde", "K1") == record


def test_put_accepts_null_for_nullable_properties(tb: httpx.Client) -> None:
    tb.post("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "A", "KundeId": "K1"})
    record = tb.put("/prosjekt/Prosjekt", json={"Id": "P1", "Navn": "A", "KundeId": None}).json()
    assert record["KundeId"] is None


def test_put_unknown_id_is_404_and_put_on_avdeling_is_not_allowed(tb: httpx.Client) -> None:
    assert tb.put("/prosjekt/Kunde", json={"Id": "K9", "Navn": "A"}).status_code == 404
    assert tb.put("/ansatt/Avdeling", json={"Id": "A1", "Navn": "A"}).status_code == 405


def test_patch_avdeling_is_partial(tb: httpx.Client) -> None:
    tb.post("/ansatt/Avdeling", json={"Id": "A1", "Navn": "Salg", "Postnr": "0150", "Poststed": "Oslo"})
    response = tb.patch("/ansatt/Avdeling/A1", json={"Navn": "Salg Oslo", "Avdelingsleder": 1001})
    assert response.status_code == 200
    record = response.json()
    assert (record["Navn"], record["Poststed"], record["Avdelingsleder"]) == ("Salg Oslo", "Oslo", 1001)
    assert tb.patch("/ansatt/Avdeling/A1", json={"Avdelingsleder": None}).json()["Avdelingsleder"] is None


def test_patch_errors(tb: httpx.Client) -> None:
    assert tb.patch("/ansatt/Avdeling/A9", json={"Navn": "x"}).status_code == 404
    tb.post("/ansatt/Avdeling", json={"Id": "A1", "Navn": "Salg"})
    assert tb.patch("/ansatt/Avdeling/A1", json={"Synlig": None}).status_code == 400
    assert tb.patch("/ansatt/Avdeling/A1", json={"Ukjent": 1}).status_code == 400
    assert tb.patch("/ansatt/Avdeling/A1", json={"Id": "A2"}).status_code == 400


def test_direct_edit_and_put_validate(empty_sandbox: Sandbox) -> None:
    tidsbanken = empty_sandbox.tidsbanken
    tidsbanken.put("Kunde", {"Id": "K1", "Navn": "A"})
    assert tidsbanken.edit("Kunde", "K1", Aktiv=False)["Aktiv"] is False
    with pytest.raises(ValueError):
        tidsbanken.edit("Kunde", "K1", Aktiv="no")
    with pytest.raises(KeyError):
        tidsbanken.edit("Kunde", "K404", Navn="x")
    with pytest.raises(KeyError):
        tidsbanken.records("Ansatt")


def test_seeded_listing_pages_through_everything(
    sandbox: Sandbox, client_for: Callable[[Sandbox, str], httpx.Client]
) -> None:
    client = client_for(sandbox, "tidsbanken")
    ids: list[str] = []
    skip = 0
    while True:
        page = client.get("/prosjekt/Prosjekt", params={"$top": 7, "$skip": skip}).json()["value"]
        ids += [r["Id"] for r in page]
        if len(page) < 7:
            break
        skip += 7
    assert sorted(ids) == sorted(r["Id"] for r in sandbox.tidsbanken.records("Prosjekt"))
    assert len(ids) == 20
