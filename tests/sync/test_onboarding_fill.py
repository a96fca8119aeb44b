"""Onboarding: a record matched to an existing partner has its empty properties filled from the partner;
only two different non-empty values are a conflict."""

from __future__ import annotations

from typing import Any

from sync_harness import Harness


def _kunder_with_org_number(h: Harness) -> list[dict[str, Any]]:
    return [k for k in h.sb.tidsbanken.records("Kunde") if k["Organisasjonsnummer"]]


def _precreate(h: Harness, **body: Any) -> str:
    """A Customer already in Custompms (as when the sync is first switched on)."""
    return str(h.sb.custompms.create("customers", {"kind": "customer", **body})["id"])


def test_empty_properties_are_filled_from_the_matched_partner(hs: Harness) -> None:
    h = hs
    sparse_pms, sparse_tb = _kunder_with_org_number(h)[:2]
    # Custompms knows only the name and organisation number of the first Kunde.
    only_names = _precreate(h, name=sparse_pms["Navn"], organization_number=sparse_pms["Organisasjonsnummer"])
    # Tidsbanken lacks e-mail and website of the second, which Custompms holds; and their phones differ.
    h.sb.tidsbanken.edit("Kunde", sparse_tb["Id"], Epost="", Url="", Telefon="+47 22 22 22 22")
    fuller = _precreate(h, name=sparse_tb["Navn"], organization_number=sparse_tb["Organisasjonsnummer"],
                        email="post@fuller.no", website="https://fuller.no", phone="+47 33 33 33 33")

    planned = h.plan("--dataflow", "kunde-customer")
    assert "conflict on phone" in planned.stdout
    assert planned.stdout.count("conflict on") == 1, planned.stdout

    run = h.apply()

    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["linked"] == 2
    assert run.counts("kunde-customer")["conflicts"] == 1  # phone: two different values, settled source-wins
    filled = h.sb.custompms.get("customers", only_names) or {}
    assert filled["phone"] == (sparse_pms["Telefon"] or None)
    assert filled["email"] == (sparse_pms["Epost"] or None)
    assert filled["postal_address"]["city"] == (sparse_pms["Poststed"] or None)
    kunde = h.sb.tidsbanken.get("Kunde", sparse_tb["Id"]) or {}
    assert (kunde["Epost"], kunde["Url"]) == ("post@fuller.no", "https://fuller.no")
    customer = h.sb.custompms.get("customers", fuller) or {}
    assert customer["phone"] == "+47 22 22 22 22"
    assert customer["email"] == "post@fuller.no"  # an empty Tidsbanken value never erased it
    writes = h.writes()
    assert h.apply().exit_code == 0
    assert h.writes() == writes
