"""Matching at onboarding: records that already exist on both sides are linked, not duplicated; an
ambiguous match is reported and left for a person, never guessed."""

from __future__ import annotations

from typing import Any

from e2e_expect import customer
from sync_harness import Harness


def _precreate(h: Harness, kunde: dict[str, Any], **overrides: Any) -> str:
    """A Customer already in Custompms for this Kunde (as when the sync is first switched on)."""
    body = {k: v for k, v in customer(kunde).items() if v is not None}
    body.update(overrides)
    return str(h.sb.custompms.create("customers", body)["id"])


def _kunder_with_org_number(h: Harness) -> list[dict[str, Any]]:
    return [k for k in h.sb.tidsbanken.records("Kunde") if k["Organisasjonsnummer"]]


def test_existing_customers_are_linked_by_organisation_number(hs: Harness) -> None:
    h = hs
    first, second = _kunder_with_org_number(h)[:2]
    existing = _precreate(h, first)
    drifted = _precreate(h, second, phone="+47 11 11 11 11")  # differs: settled by source-wins
    run = h.apply()
    assert run.exit_code == 0, run.output
    links = h.links("kunde-customer")
    assert links[first["Id"]] == existing and links[second["Id"]] == drifted
    assert run.counts("kunde-customer")["linked"] == 2
    customers = [c for c in h.sb.custompms.records("customers") if c["kind"] == "customer"]
    assert len(customers) == len(h.sb.tidsbanken.records("Kunde"))  # nothing created twice
    pms = h.sb.custompms.get("customers", drifted)
    assert pms is not None and pms["phone"] == (second["Telefon"] or None)
    assert h.apply().exit_code == 0


def test_name_and_postal_code_match_when_there_is_no_organisation_number(hs: Harness) -> None:
    h = hs
    kunde = h.sb.tidsbanken.records("Kunde")[0]
    h.sb.tidsbanken.edit("Kunde", kunde["Id"], Organisasjonsnummer="")
    kunde = h.sb.tidsbanken.get("Kunde", kunde["Id"]) or {}
    existing = _precreate(h, kunde)
    assert h.apply().exit_code == 0
    assert h.links("kunde-customer")[kunde["Id"]] == existing


def test_an_ambiguous_match_is_reported_not_guessed(hs: Harness) -> None:
    h = hs
    kunde = _kunder_with_org_number(h)[0]
    one = _precreate(h, kunde, name="Første kopi AS")
    two = _precreate(h, kunde, name="Andre kopi AS")
    run = h.apply()
    assert run.exit_code == 1
    assert kunde["Id"] not in h.links("kunde-customer")
    assert run.counts("kunde-customer")["failed"] == 1
    errors = " ".join(run.report["dataflows"]["kunde-customer"]["errors"])  # type: ignore[index]
    assert "2 Customer records share organization_number" in errors and one in errors and two in errors
    named = [c for c in h.sb.custompms.records("customers") if c["organization_number"] == kunde["Organisasjonsnummer"]
             and c["kind"] == "customer"]
    assert len(named) == 2  # no third one created
    # A person picks one; the next apply merges the pair and the Kunde is no longer failing.
    assert h.cli("links", "relink", "kunde-customer", kunde["Id"], one).exit_code == 0
    assert h.apply().exit_code == 0
    pms = h.sb.custompms.get("customers", one)
    assert pms is not None and pms["name"] == kunde["Navn"]


def test_a_department_never_matches_a_customer(hs: Harness) -> None:
    h = hs
    avdeling = next(a for a in h.sb.tidsbanken.records("Avdeling") if a["Organisasjonsnr"])
    impostor = h.sb.custompms.create("customers", {"kind": "customer", "name": "Ikke en avdeling AS",
                                                   "organization_number": avdeling["Organisasjonsnr"]})
    assert h.apply().exit_code == 0
    assert h.links("avdeling-customer")[avdeling["Id"]] != impostor["id"]


def test_two_records_matching_one_are_reported_not_guessed(hs: Harness) -> None:
    h = hs
    first, second = _kunder_with_org_number(h)[:2]
    h.sb.tidsbanken.edit("Kunde", second["Id"], Organisasjonsnummer=first["Organisasjonsnummer"])
    existing = _precreate(h, first)
    run = h.apply()
    assert run.exit_code == 1
    links = h.links("kunde-customer")
    linked_one = [k for k in (first["Id"], second["Id"]) if links.get(k) == existing]
    assert len(linked_one) == 1  # the first to be read takes it ...
    other = second["Id"] if linked_one == [first["Id"]] else first["Id"]
    assert other not in links  # ... and the other is neither linked to it nor given a guessed new one
    errors = " ".join(run.report["dataflows"]["kunde-customer"]["errors"])  # type: ignore[index]
    assert f"Customer {existing} has the same organization_number" in errors and "matched it already" in errors
