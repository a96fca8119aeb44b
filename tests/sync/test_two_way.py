"""Issue 5, end to end: edits flow both ways, conflicts follow the mapping's policy, deletions are
noticed and guarded."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from e2e_expect import assert_in_sync
from sync_harness import Harness, all_links, write_requests

from mapsync.sandbox._emulator import Emulator


@contextmanager
def later(server: Emulator, seconds: float = 5.0) -> Iterator[None]:
    """Writes inside are stamped `seconds` in the future (and the emulator's later stamps after them), so
    that which side was edited last does not depend on two clocks' millisecond ties."""
    server.clock = lambda: datetime.now(UTC) + timedelta(seconds=seconds)
    try:
        yield
    finally:
        server.clock = None


def unused_kunder(h: Harness) -> list[dict[str, object]]:
    """Kunder that no Prosjekt refers to first, then the others."""
    used = Counter(p["KundeId"] for p in h.sb.tidsbanken.records("Prosjekt"))
    return sorted(h.sb.tidsbanken.records("Kunde"), key=lambda k: (used[k["Id"]], k["Id"]))


def test_edits_on_both_sides_in_one_cycle(h: Harness) -> None:
    assert h.apply().exit_code == 0
    links = h.links("kunde-customer")
    k1, k2, k3 = h.sb.tidsbanken.records("Kunde")[:3]
    c1, c2, c3 = (links[k["Id"]] for k in (k1, k2, k3))

    h.sb.tidsbanken.edit("Kunde", k1["Id"], Navn="Endret i Tidsbanken AS")
    h.sb.custompms.edit("customers", c2, phone="+47 22 33 44 55")
    h.sb.tidsbanken.edit("Kunde", k3["Id"], Epost="ny@tidsbanken.no")
    h.sb.custompms.edit("customers", c3, mobile="+47 400 00 000")
    before = write_requests(h)

    run = h.apply()
    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["updated"] == 3
    assert run.counts()["conflicts"] == 0
    written = write_requests(h) - before
    assert written == Counter({
        ("custompms", "PATCH", f"/api/v1/customers/{c1}"): 1,
        ("custompms", "PATCH", f"/api/v1/customers/{c3}"): 1,
        ("tidsbanken", "PUT", "/prosjekt/Kunde"): 2,  # k2 and k3, whole-record updates
    })

    pms1, pms2, pms3 = (h.sb.custompms.get("customers", c) for c in (c1, c2, c3))
    tb1, tb2, tb3 = (h.sb.tidsbanken.get("Kunde", k["Id"]) for k in (k1, k2, k3))
    assert pms1 is not None and pms2 is not None and pms3 is not None
    assert tb1 is not None and tb2 is not None and tb3 is not None
    assert pms1["name"] == tb1["Navn"] == "Endret i Tidsbanken AS"
    assert tb2["Telefon"] == pms2["phone"] == "+47 22 33 44 55"
    assert tb2["Navn"] == k2["Navn"]  # the rest of the record is untouched
    assert pms3["email"] == tb3["Epost"] == "ny@tidsbanken.no"
    assert tb3["Mobil"] == pms3["mobile"] == "+47 400 00 000"
    assert_in_sync(h.sb, all_links(h))

    # no ping-pong: each write reads back as what the link recorded
    settled = h.writes()
    for _ in range(2):
        again = h.apply()
        assert again.exit_code == 0, again.output
        assert h.writes() == settled
    assert h.apply("--full").exit_code == 0
    assert h.writes() == settled


@pytest.mark.parametrize(("policy", "edited_last", "winner"), [
    ("source-wins", "custompms", "tidsbanken"),
    ("target-wins", "tidsbanken", "custompms"),
    ("newest-wins", "custompms", "custompms"),
    ("newest-wins", "tidsbanken", "tidsbanken"),
    ("manual", "custompms", None),
])
def test_conflict_policy(hs: Harness, policy: str, edited_last: str, winner: str | None) -> None:
    h = hs
    h.set_mapping("kunde-customer", conflicts=policy)
    assert h.apply().exit_code == 0
    kunde = unused_kunder(h)[0]
    kunde_id = str(kunde["Id"])
    customer_id = h.links("kunde-customer")[kunde_id]
    tb_name, pms_name = "Fra Tidsbanken AS", "Fra Custompms AS"

    def edit_tidsbanken() -> None:
        h.sb.tidsbanken.edit("Kunde", kunde_id, Navn=tb_name)

    def edit_custompms() -> None:
        h.sb.custompms.edit("customers", customer_id, name=pms_name)

    if edited_last == "custompms":
        edit_tidsbanken()
        with later(h.sb.custompms):
            edit_custompms()
    else:
        edit_custompms()
        with later(h.sb.tidsbanken):
            edit_tidsbanken()

    if policy == "manual":
        planned = h.plan()
        assert f"! conflict Kunde {kunde_id} <-> Customer {customer_id}" in planned.stdout
        assert f'conflict on name: source "{tb_name}", target "{pms_name}"' in planned.stdout
        plan_json = json.loads(h.plan("--json").stdout)
        assert plan_json["total"]["conflicts"] == 1

    before = h.writes()
    run = h.apply()
    assert run.counts("kunde-customer")["conflicts"] == 1
    tb = h.sb.tidsbanken.get("Kunde", kunde_id)
    pms = h.sb.custompms.get("customers", customer_id)
    assert tb is not None and pms is not None

    if winner is None:
        assert h.writes() == before  # neither side changes
        assert (tb["Navn"], pms["name"]) == (tb_name, pms_name)
        link = h.store().link_by_source("kunde-customer", kunde_id)
        assert link is not None and link.state == "conflict"
        conflicts = list(h.store().iter_conflicts("kunde-customer"))
        assert [(c.source_id, c.target_id, c.prop, c.base, c.source_value, c.target_value) for c in conflicts] \
            == [(kunde_id, customer_id, "name", kunde["Navn"], tb_name, pms_name)]
        # it stays: the next run neither writes nor forgets it
        again = h.apply()
        assert h.writes() == before
        # counted once, when first detected; still waiting, as the report says
        assert again.counts("kunde-customer")["conflicts"] == 0
        assert again.report is not None and again.report["conflicts_waiting"] == 1
        assert len(list(h.store().iter_conflicts("kunde-customer"))) == 1
        tb = h.sb.tidsbanken.get("Kunde", kunde_id)
        pms = h.sb.custompms.get("customers", customer_id)
        assert tb is not None and pms is not None
        assert (tb["Navn"], pms["name"]) == (tb_name, pms_name)
        # an edit of another property on one side still flows, and leaves the conflict as it is
        h.sb.custompms.edit("customers", customer_id, phone="+47 99 88 77 66")
        third = h.apply()
        assert third.counts("kunde-customer")["conflicts"] == 0
        assert third.report is not None and third.report["conflicts_waiting"] == 1
        tb = h.sb.tidsbanken.get("Kunde", kunde_id)
        pms = h.sb.custompms.get("customers", customer_id)
        assert tb is not None and pms is not None
        assert (tb["Navn"], pms["name"]) == (tb_name, pms_name)
        assert tb["Telefon"] == "+47 99 88 77 66"
        assert len(list(h.store().iter_conflicts("kunde-customer"))) == 1
        settled = h.writes()
        assert h.apply().counts("kunde-customer")["conflicts"] == 0  # waiting, not detected anew
        assert h.writes() == settled
        return

    assert run.exit_code == 0, run.output
    expected = tb_name if winner == "tidsbanken" else pms_name
    assert tb["Navn"] == pms["name"] == expected
    assert h.writes() == before + 1  # only the losing side is written
    assert list(h.store().iter_conflicts()) == []
    settled = h.writes()
    for _ in range(2):
        again = h.apply()
        assert again.exit_code == 0, again.output
        assert again.counts()["conflicts"] == 0
    assert h.writes() == settled


def test_manual_conflict_survives_a_later_edit_on_one_side(hs: Harness) -> None:
    """The conflicted Kunde is no longer re-listed (no overlap window, and the cursor moved on), so only
    its Customer's next edit is seen: that edit flows, and the conflict is neither settled nor forgotten."""
    h = hs
    h.set_mapping("kunde-customer", conflicts="manual")
    h.set_connection("tidsbanken", overlap=0)
    assert h.apply().exit_code == 0
    kunde_id = str(unused_kunder(h)[0]["Id"])
    customer_id = h.links("kunde-customer")[kunde_id]
    h.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Fra Tidsbanken AS")
    with later(h.sb.custompms):
        h.sb.custompms.edit("customers", customer_id, name="Fra Custompms AS")
    first = h.apply()
    assert first.counts("kunde-customer")["conflicts"] == 1
    assert len(list(h.store().iter_conflicts("kunde-customer"))) == 1
    # move the Kunde cursor past the conflicted Kunde: another Kunde changes later
    other = str(unused_kunder(h)[1]["Id"])
    with later(h.sb.tidsbanken, 1.0):
        h.sb.tidsbanken.edit("Kunde", other, Telefon="+47 11 11 11 11")
    assert h.apply().counts("kunde-customer")["updated"] == 1

    h.sb.custompms.edit("customers", customer_id, website="https://ny.example.no")
    before = write_requests(h)
    run = h.apply()
    assert write_requests(h) - before == Counter({("tidsbanken", "PUT", "/prosjekt/Kunde"): 1})
    tb = h.sb.tidsbanken.get("Kunde", kunde_id)
    pms = h.sb.custompms.get("customers", customer_id)
    assert tb is not None and pms is not None
    assert tb["Url"] == "https://ny.example.no"
    assert (tb["Navn"], pms["name"]) == ("Fra Tidsbanken AS", "Fra Custompms AS")
    assert run.counts("kunde-customer")["conflicts"] == 0  # the same conflict, counted when first detected
    assert run.report is not None and run.report["conflicts_waiting"] == 1
    link = h.store().link_by_source("kunde-customer", kunde_id)
    assert link is not None and link.state == "conflict"
    assert [(c.source_value, c.target_value) for c in h.store().iter_conflicts("kunde-customer")] == [
        ("Fra Tidsbanken AS", "Fra Custompms AS")]
    settled = h.writes()
    for _ in range(2):
        h.apply()
        assert h.writes() == settled


# -- deletions -------------------------------------------------------------------------------------------


def test_mass_delete_guard_refuses(hs: Harness) -> None:
    h = hs
    assert h.apply().exit_code == 0
    links_before = all_links(h)
    customers_before = h.sb.custompms.records("customers")
    projects_before = h.sb.custompms.records("projects")
    for kunde in h.sb.tidsbanken.records("Kunde"):
        h.sb.tidsbanken.remove("Kunde", kunde["Id"])
    before = write_requests(h)

    run = h.apply("--full")
    assert run.exit_code == 1, run.output
    assert run.report is not None
    assert run.report["status"] != "ok"
    flow = run.counts("kunde-customer")
    assert flow["status"] != "ok"
    assert flow["deleted"] == flow["unlinked"] == 0
    guard = [e for e in flow["errors"] if "refusing to delete" in e]
    assert len(guard) == 1, flow["errors"]
    assert f"{len(links_before['kunde-customer'])} of {len(links_before['kunde-customer'])} links" in guard[0]
    assert "max_share" in guard[0]
    assert "refusing to delete" in run.stderr
    assert write_requests(h) == before
    assert all_links(h) == links_before
    assert h.sb.custompms.records("customers") == customers_before
    assert h.sb.custompms.records("projects") == projects_before


def test_custompms_tombstone_unlinks_by_default(hs: Harness) -> None:
    h = hs
    assert h.apply().exit_code == 0
    kunde_id = str(unused_kunder(h)[0]["Id"])
    customer_id = h.links("kunde-customer")[kunde_id]
    kunder_before = h.sb.tidsbanken.records("Kunde")
    h.sb.custompms.delete("customers", customer_id)
    before = write_requests(h)

    run = h.apply()
    assert run.counts("kunde-customer")["unlinked"] == 1
    assert run.counts("kunde-customer")["deleted"] == 0
    assert kunde_id not in h.links("kunde-customer")
    assert h.store().link_by_target("kunde-customer", customer_id) is None
    assert h.sb.tidsbanken.records("Kunde") == kunder_before  # nothing deleted (or written) in Tidsbanken
    assert not [w for w in write_requests(h) - before if w[0] == "tidsbanken"]
    assert run.exit_code == 0, run.output


def test_a_tombstone_beside_an_edit_of_the_source_unlinks_without_failing(hs: Harness) -> None:
    h = hs
    assert h.apply().exit_code == 0
    kunde_id = str(unused_kunder(h)[0]["Id"])
    customer_id = h.links("kunde-customer")[kunde_id]
    h.sb.tidsbanken.edit("Kunde", kunde_id, Telefon="+47 12 12 12 12")
    h.sb.custompms.delete("customers", customer_id)
    run = h.apply()
    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["unlinked"] == 1
    assert run.counts("kunde-customer")["failed"] == 0


def test_propagate_deletes_the_project_on_a_full_scan(hs: Harness) -> None:
    h = hs
    h.set_mapping("prosjekt-project", deletes={"policy": "propagate", "max_share": 0.1})
    assert h.apply().exit_code == 0
    prosjekt_id = h.sb.tidsbanken.records("Prosjekt")[0]["Id"]
    project_id = h.links("prosjekt-project")[prosjekt_id]
    projects = len(h.sb.custompms.records("projects"))
    h.sb.tidsbanken.remove("Prosjekt", prosjekt_id)
    before = write_requests(h)

    run = h.apply("--full")
    assert run.exit_code == 0, run.output
    assert run.counts("prosjekt-project")["deleted"] == 1
    assert write_requests(h) - before == Counter({("custompms", "DELETE", f"/api/v1/projects/{project_id}"): 1})
    assert h.sb.custompms.get("projects", project_id) is None
    assert len(h.sb.custompms.records("projects")) == projects - 1
    assert prosjekt_id not in h.links("prosjekt-project")
    assert_in_sync(h.sb, all_links(h))

    settled = h.writes()
    assert h.apply("--full").exit_code == 0
    assert h.writes() == settled


def test_create_both_ways_retries_a_failed_create_from_the_ledger(hs: Harness) -> None:
    h = hs
    h.set_mapping("kunde-customer", create="both")
    assert h.apply().exit_code == 0
    customer = h.sb.custompms.create("customers", {"kind": "customer", "name": "Født i Custompms AS",
                                                   "phone": "+47 40 00 00 00"})
    h.sb.tidsbanken.refuse(lambda entity, body: "not today" if body.get("Navn") == "Født i Custompms AS" else None)
    failed = h.apply("--dataflow", "kunde-customer")
    assert failed.exit_code == 1
    assert [(d.side, d.record_id, d.status) for d in h.store().iter_dead_letters("kunde-customer")] == [
        ("source", customer["id"], 400)]
    assert "not today" in " ".join(failed.report["dataflows"]["kunde-customer"]["errors"])  # type: ignore[index]
    h.sb.tidsbanken.refuse(None)
    # The Customer is not listed again (the cursor moved past it): the ledger is what brings it back.
    run = h.apply()
    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["created"] == 1
    kunde_id = next(s for s, t in h.links("kunde-customer").items() if t == customer["id"])
    kunde = h.sb.tidsbanken.get("Kunde", kunde_id)
    assert kunde is not None and kunde["Navn"] == "Født i Custompms AS" and kunde["Telefon"] == "+47 40 00 00 00"
    assert kunde["Organisasjonsnummer"] == ""  # Custompms's null is Tidsbanken's ""
    assert list(h.store().iter_dead_letters()) == []
    before = h.writes()
    assert h.apply().exit_code == 0
    assert h.writes() == before
