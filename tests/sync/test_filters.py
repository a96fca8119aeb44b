"""Issue 12 item 1, end to end against the emulators: `where:` and `target_where:` on a dataflow.

A record out of scope is never created or matched; a linked record that leaves the scope is handled as if it
had left its system (the delete policy and the guard apply, and `plan` says it left the filter); one that
enters the scope is created, matched, or relinked to the partner it had before it left."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sync_harness import Harness

from mapsync.mapping.paths import make_predicate
from mapsync.sandbox import SeedSize
from mapsync.sync._plan_filters import Scope

FLOW = "kunde-customer"
LEFT_WHERE = "left the filter (where: Aktiv)"
LEFT_TARGET_WHERE = "left the filter (target_where: active)"


@pytest.fixture
def kh(make_harness: Callable[..., Harness], sqlite_url: str) -> Harness:
    """Kunder only (no Prosjekter waiting for them), a quarter of them inactive."""
    h = make_harness(sqlite_url, seed=SeedSize(avdelinger=1, kunder=12, prosjekter=0), rng_seed=3)
    kunder = sorted(k["Id"] for k in h.sb.tidsbanken.records("Kunde"))
    for number, kunde_id in enumerate(kunder):
        h.sb.tidsbanken.edit("Kunde", kunde_id, Aktiv=number % 4 != 0)
    return h


def active_kunder(h: Harness) -> set[str]:
    return {k["Id"] for k in h.sb.tidsbanken.records("Kunde") if k["Aktiv"]}


def customer_names(h: Harness) -> list[str]:
    return sorted(c["name"] for c in h.sb.custompms.records("customers") if c["kind"] == "customer")


def linked_kunde(h: Harness) -> tuple[str, str]:
    return sorted(h.links(FLOW).items())[0]


def assert_clean(h: Harness) -> None:
    """Nothing left to do, on an incremental and on a full plan: no ping-pong."""
    for args in ((), ("--full",)):
        planned = h.plan("--exit-code", *args)
        assert planned.exit_code == 0, planned.output


def test_records_out_of_scope_are_never_created(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv")
    active = active_kunder(kh)
    assert 0 < len(active) < 12

    run = kh.apply()

    assert run.exit_code == 0, run.output
    assert set(kh.links(FLOW)) == active
    assert run.counts(FLOW)["created"] == len(active)
    names = {k["Navn"] for k in kh.sb.tidsbanken.records("Kunde") if k["Id"] in active}
    assert customer_names(kh) == sorted(names)
    assert_clean(kh)
    assert kh.apply("--full").counts(FLOW)["created"] == 0


def test_a_record_leaving_the_scope_is_unlinked_under_unlink_and_relinked_when_back(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv")
    assert kh.apply().exit_code == 0
    kunde_id, customer_id = linked_kunde(kh)
    kh.sb.tidsbanken.edit("Kunde", kunde_id, Aktiv=False)

    planned = kh.plan().stdout  # incremental: the edit moved its change time, so leaving is seen
    assert f"- unlink Kunde {kunde_id} <-> Customer {customer_id}" in planned
    assert LEFT_WHERE in planned
    assert LEFT_WHERE in kh.plan("--id", f"{FLOW}:{kunde_id}").stdout  # one record: the same decision
    run = kh.apply()

    assert run.exit_code == 0, run.output
    assert (run.counts(FLOW)["unlinked"], run.counts(FLOW)["created"]) == (1, 0)
    assert kunde_id not in kh.links(FLOW)
    assert kh.sb.custompms.get("customers", customer_id) is not None  # unlink keeps the partner
    assert_clean(kh)

    # Back in scope (and renamed meanwhile): its old Customer is linked again, and the new name flows.
    kh.sb.tidsbanken.edit("Kunde", kunde_id, Aktiv=True, Navn="Tilbake AS")
    planned = kh.plan().stdout
    assert f"= relink Kunde {kunde_id} <-> Customer {customer_id}" in planned
    back = kh.apply()
    assert back.exit_code == 0, back.output
    assert back.counts(FLOW)["created"] == 0
    assert kh.links(FLOW)[kunde_id] == customer_id
    customer = kh.sb.custompms.get("customers", customer_id)
    assert customer is not None and (customer["name"], customer["active"]) == ("Tilbake AS", True)
    assert_clean(kh)


def test_a_record_leaving_the_scope_under_propagate_deletes_its_partner(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv", deletes={"policy": "propagate", "max_share": 0.5})
    assert kh.apply().exit_code == 0
    kunde_id, customer_id = linked_kunde(kh)
    kh.sb.tidsbanken.edit("Kunde", kunde_id, Aktiv=False)

    planned = kh.plan().stdout
    assert f"- delete Customer {customer_id}" in planned or f"- delete Kunde {kunde_id}" in planned, planned
    assert LEFT_WHERE in planned
    run = kh.apply()

    assert run.exit_code == 0, run.output
    assert kh.sb.custompms.get("customers", customer_id) is None
    assert kh.sb.tidsbanken.get("Kunde", kunde_id) is not None  # the record that left its scope stays
    assert_clean(kh)

    # Back in scope: its Customer is gone, so a new one is created.
    kh.sb.tidsbanken.edit("Kunde", kunde_id, Aktiv=True)
    back = kh.apply()
    assert back.exit_code == 0, back.output
    assert back.counts(FLOW)["created"] == 1
    assert kh.links(FLOW)[kunde_id] != customer_id


def test_the_delete_guard_applies_to_records_leaving_the_scope(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv")
    assert kh.apply().exit_code == 0
    linked = sorted(kh.links(FLOW))
    for kunde_id in linked[:3]:  # 3 of 9 links, the guard allows 10%: at most 1
        kh.sb.tidsbanken.edit("Kunde", kunde_id, Aktiv=False)

    planned = kh.plan()
    assert "refusing to delete or unlink 3 of" in planned.stdout, planned.output
    run = kh.apply()

    assert run.exit_code == 1, run.output
    assert run.counts(FLOW)["unlinked"] == 0
    assert sorted(kh.links(FLOW)) == linked
    # Once allowed, the same records (seen again: the cursors stayed put) are unlinked.
    allowed = kh.apply("--max-delete-share", "0.5")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.counts(FLOW)["unlinked"] == 3
    assert sorted(kh.links(FLOW)) == linked[3:]


def test_a_record_entering_the_scope_is_created(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv")
    assert kh.apply().exit_code == 0
    inactive = sorted({k["Id"] for k in kh.sb.tidsbanken.records("Kunde")} - active_kunder(kh))
    kh.sb.tidsbanken.edit("Kunde", inactive[0], Aktiv=True)

    planned = kh.plan().stdout
    assert f"+ create Customer from Kunde {inactive[0]}" in planned
    assert inactive[1] not in planned
    run = kh.apply()

    assert run.exit_code == 0, run.output
    assert run.counts(FLOW)["created"] == 1
    assert inactive[0] in kh.links(FLOW)
    assert_clean(kh)


def test_a_record_entering_the_scope_is_matched(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv")
    assert kh.apply().exit_code == 0
    inactive = sorted({k["Id"] for k in kh.sb.tidsbanken.records("Kunde")} - active_kunder(kh))[0]
    kunde = kh.sb.tidsbanken.get("Kunde", inactive)
    assert kunde is not None
    made = kh.sb.custompms.create("customers", {"kind": "customer", "name": "Laget i PMS",
                                                "organization_number": kunde["Organisasjonsnummer"]})
    kh.sb.tidsbanken.edit("Kunde", inactive, Aktiv=True)

    run = kh.apply()

    assert run.exit_code == 0, run.output
    assert kh.links(FLOW)[inactive] == made["id"]
    assert run.counts(FLOW)["created"] == 0
    assert_clean(kh)


def test_target_records_out_of_scope_are_never_match_candidates(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv", target_where="active")
    kunde_id = sorted(active_kunder(kh))[0]
    kunde = kh.sb.tidsbanken.get("Kunde", kunde_id)
    assert kunde is not None
    archived = kh.sb.custompms.create("customers", {"kind": "customer", "name": "Arkivert", "active": False,
                                                    "organization_number": kunde["Organisasjonsnummer"]})

    run = kh.apply()

    assert run.exit_code == 0, run.output
    assert kh.links(FLOW)[kunde_id] != archived["id"]  # a new Customer: the archived one is out of scope
    assert run.counts(FLOW)["created"] == len(active_kunder(kh))
    assert_clean(kh)


def test_a_target_record_leaving_the_scope_keeps_the_pair_apart_until_it_is_back(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv", target_where="active")
    kh.set_connection("tidsbanken", overlap=0)  # a Kunde is listed again only if it is the last one changed
    assert kh.apply().exit_code == 0
    kunde_id, customer_id = linked_kunde(kh)
    kh.sb.custompms.edit("customers", customer_id, active=False)

    planned = kh.plan().stdout
    assert f"- unlink Kunde {kunde_id} <-> Customer {customer_id}" in planned
    assert LEFT_TARGET_WHERE in planned
    run = kh.apply()
    assert run.exit_code == 0, run.output
    assert (run.counts(FLOW)["unlinked"], run.counts(FLOW)["created"]) == (1, 0)
    # Kept apart as after a deletion (policy unlink): the Kunde, edited, gets no new Customer.
    kh.sb.tidsbanken.edit("Kunde", kunde_id, Telefon="+47 22 00 00 00")
    assert kh.apply().counts(FLOW)["created"] == 0
    assert kunde_id not in kh.links(FLOW)
    another = sorted(active_kunder(kh) - {kunde_id})[0]
    kh.sb.tidsbanken.edit("Kunde", another, Telefon="+47 23 00 00 00")  # the cursor moves past the Kunde
    assert kh.apply().counts(FLOW)["updated"] == 1

    # The Customer back in scope: relinked to its Kunde on the run that lists it, the Kunde unchanged.
    kh.sb.custompms.edit("customers", customer_id, active=True)
    back = kh.apply()
    assert back.exit_code == 0, back.output
    assert kh.links(FLOW)[kunde_id] == customer_id
    customer = kh.sb.custompms.get("customers", customer_id)
    assert customer is not None and customer["phone"] == "+47 22 00 00 00"
    assert_clean(kh)


def test_a_filter_that_cannot_be_evaluated_fails_the_record_with_its_line(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="abs(Navn)")  # a string where a number is wanted: a runtime error

    run = kh.apply()

    assert run.exit_code == 1
    assert run.counts(FLOW)["created"] == 0
    assert "mappings/kunde-customer.yaml:" in run.output and "where 'abs(Navn)' cannot be evaluated" in run.output


def test_target_records_out_of_scope_are_never_created_back(kh: Harness) -> None:
    kh.set_mapping(FLOW, where="Aktiv", target_where="active", create="both")
    assert kh.apply().exit_code == 0
    kh.sb.custompms.create("customers", {"kind": "customer", "name": "Aktiv i PMS", "active": True})
    kh.sb.custompms.create("customers", {"kind": "customer", "name": "Arkivert i PMS", "active": False})

    run = kh.apply()

    assert run.exit_code == 0, run.output
    names = {k["Navn"] for k in kh.sb.tidsbanken.records("Kunde")}
    assert "Aktiv i PMS" in names
    assert "Arkivert i PMS" not in names
    assert_clean(kh)


@pytest.mark.parametrize(("value", "in_scope"), [
    (None, False), (False, False), ("", False), ([], False), ({}, False),
    (True, True), (0, True), ("nei", True), ([None], True), ({"a": None}, True)])
def test_a_filter_is_truthy_as_jmespath_says(value: object, in_scope: bool) -> None:
    scope = Scope("where", "x", "mappings/m.yaml:3", make_predicate("x"))
    assert scope.holds({"x": value}) is in_scope
