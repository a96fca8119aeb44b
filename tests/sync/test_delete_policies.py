"""Issue 10, end to end: a delete policy states its outcome. A Customer deleted in Custompms under
`unlink` keeps its Kunde apart until someone relinks it; under `recreate` it is created again in the run
that sees the deletion, and `plan` shows both steps."""

from __future__ import annotations

from sync_harness import Harness


def delete_a_customer(h: Harness) -> tuple[str, str]:
    """Delete, in Custompms, the Customer of a linked Kunde; returns (Kunde id, Customer id)."""
    kunde_id, customer_id = sorted(h.links("kunde-customer").items())[0]
    h.sb.custompms.delete("customers", customer_id)
    return kunde_id, customer_id


def customers_named(h: Harness, name: str) -> list[str]:
    return [c["id"] for c in h.sb.custompms.records("customers") if c["name"] == name]


def test_unlink_keeps_the_pair_apart_until_relinked(h: Harness) -> None:
    assert h.apply().exit_code == 0
    kunde_id, _ = delete_a_customer(h)
    kunde = h.sb.tidsbanken.get("Kunde", kunde_id)
    assert kunde is not None

    planned = h.plan()
    assert f"- unlink Kunde {kunde_id} <-> Customer" in planned.stdout
    run = h.apply()
    assert run.exit_code == 0, run.output
    assert (run.counts("kunde-customer")["unlinked"], run.counts("kunde-customer")["created"]) == (1, 0)

    # The Kunde is listed again (edited, and on full scans): no Customer is made for it, on any run.
    h.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Fortsatt uten kunde i PMS")
    assert kunde_id not in h.plan().stdout
    assert kunde_id not in h.plan("--full").stdout
    for args in ((), ("--full",), ()):
        again = h.apply(*args)
        assert again.exit_code == 0, again.output
        assert again.counts("kunde-customer")["created"] == 0
    assert customers_named(h, "Fortsatt uten kunde i PMS") == []
    assert kunde_id not in h.links("kunde-customer")

    # The memory of why they are apart does not expire with the other retired links (30 days).
    (entry,) = h.store().retired_by_source("kunde-customer", [kunde_id])
    entry.retired_at = "2000-01-01T00:00:00.000000+00:00"
    h.store().retire_link(entry)
    assert h.apply("--full").exit_code == 0  # a full scan that settles and expires old entries
    h.sb.tidsbanken.edit("Kunde", kunde_id, Gateadresse="Ny gate 1")
    assert h.apply().counts("kunde-customer")["created"] == 0
    assert [e.gone for e in h.store().retired_by_source("kunde-customer", [kunde_id])] == ["target"]

    # Relinked by hand (to a Customer made in Custompms): the pair syncs again.
    made = h.sb.custompms.create("customers", {"kind": "customer", "name": "Ny i PMS"})
    relinked = h.cli("links", "relink", "kunde-customer", kunde_id, made["id"])
    assert relinked.exit_code == 0, relinked.output
    synced = h.apply()
    assert synced.exit_code == 0, synced.output
    assert h.links("kunde-customer")[kunde_id] == made["id"]
    assert customers_named(h, "Fortsatt uten kunde i PMS") == [made["id"]]


def test_recreate_creates_the_partner_again_in_the_same_run(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    h.set_mapping("kunde-customer", deletes={"policy": "recreate", "max_share": 0.1})
    assert h.apply().exit_code == 0
    kunde_id, old_customer = delete_a_customer(h)
    kunde = h.sb.tidsbanken.get("Kunde", kunde_id)
    assert kunde is not None
    prosjekter = [p["Id"] for p in h.sb.tidsbanken.records("Prosjekt") if p["KundeId"] == kunde_id]

    planned = h.plan().stdout
    assert f"- unlink Kunde {kunde_id} <-> Customer {old_customer}" in planned
    assert f"created again from Kunde {kunde_id}" in planned
    assert f"+ create Customer from Kunde {kunde_id}" in planned
    assert planned.index(f"- unlink Kunde {kunde_id}") < planned.index(f"+ create Customer from Kunde {kunde_id}")

    run = h.apply()

    assert run.exit_code == 0, run.output
    flow = run.counts("kunde-customer")
    assert (flow["unlinked"], flow["created"]) == (1, 1)
    new_customer = h.links("kunde-customer")[kunde_id]
    assert new_customer != old_customer
    assert customers_named(h, kunde["Navn"]) == [new_customer]
    # Its Prosjekter follow the new Customer when next listed (here: a full scan).
    assert h.apply("--full").counts("prosjekt-project")["updated"] == len(prosjekter)
    for prosjekt_id in prosjekter:
        project = h.sb.custompms.get("projects", h.links("prosjekt-project")[prosjekt_id])
        assert project is not None and project["customer_id"] == new_customer
    assert h.plan("--exit-code").exit_code == 0
    assert h.apply().counts("kunde-customer")["created"] == 0
