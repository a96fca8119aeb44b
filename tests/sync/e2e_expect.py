"""What a Custompms record must hold for a Tidsbanken record, written out from the contract's property
tables (independently of the engine's mapper), and checks shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

from mapsync.sandbox import Sandbox


def text(value: Any) -> Any:
    """Tidsbanken's "" (and a missing value) is Custompms's null."""
    return None if value in ("", None) else value


def day(value: Any) -> Any:
    """A Tidsbanken local-midnight datetime with offset is the Custompms date of that day."""
    return None if value in ("", None) else str(value)[:10]


def department(avdeling: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "department",
        "name": avdeling["Navn"],
        "organization_number": text(avdeling["Organisasjonsnr"]),
        "manager_employee_id": avdeling["Avdelingsleder"],
        "active": avdeling["Synlig"],
        "postal_address_line1": text(avdeling["Adresse"]),
        "postal_address_postal_code": text(avdeling["Postnr"]),
        "postal_address_city": text(avdeling["Poststed"]),
    }


def customer(kunde: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "customer",
        "name": kunde["Navn"],
        "organization_number": text(kunde["Organisasjonsnummer"]),
        "postal_address": {"line1": text(kunde["Gateadresse"]), "line2": text(kunde["Postadresse"]),
                           "postal_code": text(kunde["Postnr"]), "city": text(kunde["Poststed"])},
        "delivery_address": {"line1": text(kunde["Leveringsadresse"]), "line2": text(kunde["Leveringsadresse2"]),
                             "postal_code": text(kunde["LevPostNr"]), "city": text(kunde["LevPoststed"])},
        "phone": text(kunde["Telefon"]),
        "mobile": text(kunde["Mobil"]),
        "email": text(kunde["Epost"]),
        "website": text(kunde["Url"]),
        "active": kunde["Aktiv"],
    }


def project(prosjekt: dict[str, Any], kunde_links: dict[str, str], avdeling_links: dict[str, str]
            ) -> dict[str, Any]:
    return {
        "name": prosjekt["Navn"],
        "customer_id": kunde_links[prosjekt["KundeId"]] if prosjekt["KundeId"] else None,
        "department_id": avdeling_links[prosjekt["AvdelingId"]] if prosjekt["AvdelingId"] else None,
        "manager_employee_id": prosjekt["AnsvarligId"],
        "start_date": day(prosjekt["StartDato"]),
        "due_date": day(prosjekt["FerdigDato"]),
        "closed_date": day(prosjekt["AvsluttetDato"]),
        "order_date": day(prosjekt["BestillingsDato"]),
        "closed": prosjekt["Avsluttet"],
        "internal": prosjekt["InterntProsjekt"],
    }


def flat_department(record: dict[str, Any]) -> dict[str, Any]:
    """The department-relevant part of a Custompms Customer, with the postal address flattened."""
    address = record.get("postal_address") or {}
    return {
        "kind": record["kind"],
        "name": record["name"],
        "organization_number": record["organization_number"],
        "manager_employee_id": record["manager_employee_id"],
        "active": record["active"],
        "postal_address_line1": address.get("line1"),
        "postal_address_postal_code": address.get("postal_code"),
        "postal_address_city": address.get("city"),
    }


def pick(record: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in keys}


def assert_in_sync(sb: Sandbox, links: dict[str, dict[str, str]]) -> None:
    """Every Tidsbanken record has exactly one linked Custompms partner holding its values; links are
    one-to-one; Custompms holds no Customer or Project that no link points at (no duplicates)."""
    customers = {c["id"]: c for c in sb.custompms.records("customers")}
    projects = {p["id"]: p for p in sb.custompms.records("projects")}
    avdeling, kunde, prosjekt = links["avdeling-customer"], links["kunde-customer"], links["prosjekt-project"]

    for name, flow in links.items():
        assert len(set(flow.values())) == len(flow), f"{name}: two sources linked to one target"
    assert not set(avdeling.values()) & set(kunde.values()), "a Customer linked by both Customer dataflows"

    avdelinger = sb.tidsbanken.records("Avdeling")
    kunder = sb.tidsbanken.records("Kunde")
    prosjekter = sb.tidsbanken.records("Prosjekt")
    assert sorted(avdeling) == sorted(a["Id"] for a in avdelinger)
    assert sorted(kunde) == sorted(k["Id"] for k in kunder)
    assert sorted(prosjekt) == sorted(p["Id"] for p in prosjekter)
    assert sorted(customers) == sorted([*avdeling.values(), *kunde.values()]), "unlinked or missing Customers"
    assert sorted(projects) == sorted(prosjekt.values()), "unlinked or missing Projects"

    for a in avdelinger:
        assert flat_department(customers[avdeling[a["Id"]]]) == department(a), a["Id"]
    for k in kunder:
        want = customer(k)
        assert pick(customers[kunde[k["Id"]]], want) == want, k["Id"]
    for p in prosjekter:
        want = project(p, kunde, avdeling)
        assert pick(projects[prosjekt[p["Id"]]], want) == want, p["Id"]


def count_names(records: list[dict[str, Any]], key: str = "name") -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record[key]] = counts.get(record[key], 0) + 1
    return counts


def assert_no_duplicates(sb: Sandbox) -> None:
    """Custompms holds each Tidsbanken record's partner once: as many records per name as Tidsbanken has."""
    tb_customers = count_names(sb.tidsbanken.records("Avdeling") + sb.tidsbanken.records("Kunde"), "Navn")
    tb_projects = count_names(sb.tidsbanken.records("Prosjekt"), "Navn")
    assert count_names(sb.custompms.records("customers")) == tb_customers
    assert count_names(sb.custompms.records("projects")) == tb_projects
