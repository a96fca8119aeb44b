"""`mapsync links`: list, export, unlink, relink, conflicts, resolve and failed, end to end."""

from __future__ import annotations

import json

from sync_harness import Harness


def _first_kunde_pair(h: Harness) -> tuple[str, str]:
    links = h.links("kunde-customer")
    kunde_id = sorted(links)[0]
    return kunde_id, links[kunde_id]


def test_list_and_export(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    listed = hs.cli("links", "list", "--dataflow", "kunde-customer", "--limit", "0")
    assert listed.exit_code == 0
    kunde_id, customer_id = _first_kunde_pair(hs)
    assert kunde_id in listed.stdout and customer_id in listed.stdout
    exported = hs.cli("links", "export", "--dataflow", "kunde-customer")
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(rows) == len(hs.links("kunde-customer"))
    row = next(r for r in rows if r["source_id"] == kunde_id)
    assert row["target_id"] == customer_id
    assert row["source_values"]["name"] == row["target_values"]["name"]
    assert all(r["dataflow"] == "kunde-customer" for r in rows)


def test_unknown_dataflow_is_a_clear_error(hs: Harness) -> None:
    run = hs.cli("links", "list", "--dataflow", "nope")
    assert run.exit_code == 1
    assert "unknown dataflow 'nope'" in run.stderr


def test_unlink_then_relink_merges_the_pair_again(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    kunde_id, customer_id = _first_kunde_pair(hs)
    run = hs.cli("links", "unlink", "kunde-customer", kunde_id)
    assert run.exit_code == 0 and customer_id in run.stdout
    assert kunde_id not in hs.links("kunde-customer")
    # While unlinked, Custompms's record drifts; relinking merges it back with the policy (source-wins).
    hs.sb.custompms.edit("customers", customer_id, phone="+47 00 00 00 00")
    run = hs.cli("links", "relink", "kunde-customer", kunde_id, customer_id)
    assert run.exit_code == 0, run.output
    assert hs.links("kunde-customer")[kunde_id] == customer_id
    applied = hs.apply()
    assert applied.exit_code == 0, applied.output
    kunde = hs.sb.tidsbanken.get("Kunde", kunde_id)
    customer = hs.sb.custompms.get("customers", customer_id)
    assert kunde is not None and customer is not None
    assert customer["phone"] == (kunde["Telefon"] or None)
    before = hs.writes()
    assert hs.apply().exit_code == 0
    assert hs.writes() == before


def test_relink_refuses_a_target_linked_elsewhere(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    links = hs.links("kunde-customer")
    first, second = sorted(links)[:2]
    run = hs.cli("links", "relink", "kunde-customer", first, links[second])
    assert run.exit_code == 1
    assert f"already linked to source {second!r}" in run.stderr


def test_manual_conflict_listed_and_resolved_for_the_target(hs: Harness) -> None:
    hs.set_mapping("kunde-customer", conflicts="manual")
    assert hs.apply().exit_code == 0
    kunde_id, customer_id = _first_kunde_pair(hs)
    hs.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Navn fra Tidsbanken AS")
    hs.sb.custompms.edit("customers", customer_id, name="Navn fra Custompms AS")
    assert hs.apply().counts("kunde-customer")["conflicts"] == 1
    listed = hs.cli("links", "conflicts")
    assert "Navn fra Tidsbanken AS" in listed.stdout and "Navn fra Custompms AS" in listed.stdout
    assert [link.state for link in hs.store().iter_links("kunde-customer", "conflict")] == ["conflict"]

    resolved = hs.cli("links", "resolve", "kunde-customer", kunde_id, "--use", "target")
    assert resolved.exit_code == 0, resolved.output
    assert hs.apply().exit_code == 0
    kunde = hs.sb.tidsbanken.get("Kunde", kunde_id)
    assert kunde is not None and kunde["Navn"] == "Navn fra Custompms AS"
    assert list(hs.store().iter_conflicts()) == []
    before = hs.writes()
    assert hs.apply().exit_code == 0
    assert hs.writes() == before


def test_resolve_for_the_source(hs: Harness) -> None:
    hs.set_mapping("kunde-customer", conflicts="manual")
    assert hs.apply().exit_code == 0
    kunde_id, customer_id = _first_kunde_pair(hs)
    hs.sb.tidsbanken.edit("Kunde", kunde_id, Epost="tb@example.no")
    hs.sb.custompms.edit("customers", customer_id, email="pms@example.no")
    hs.apply()
    assert hs.cli("links", "resolve", "kunde-customer", kunde_id, "--use", "source").exit_code == 0
    assert hs.apply().exit_code == 0
    customer = hs.sb.custompms.get("customers", customer_id)
    assert customer is not None and customer["email"] == "tb@example.no"


def test_failed_lists_refused_records_with_the_reason(hs: Harness) -> None:
    hs.sb.custompms.refuse(lambda resource, body: "not today" if str(body.get("name", "")).startswith("Refused")
                           else None)
    hs.sb.tidsbanken.put("Kunde", {"Id": "KX1", "Navn": "Refused AS", "Aktiv": True})
    assert hs.apply().exit_code == 1
    listed = hs.cli("links", "failed")
    assert listed.exit_code == 0
    assert "KX1" in listed.stdout and "422" in listed.stdout and "not today" in listed.stdout
