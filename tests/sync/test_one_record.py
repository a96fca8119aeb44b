"""Issue 10, end to end: `plan --id` and `apply --id DATAFLOW:ID` read, plan and write just the records
named (by a Tidsbanken or a Custompms id), and move no cursor."""

from __future__ import annotations

from collections import Counter

import pytest
from sync_harness import Harness, write_requests

FLOW = "kunde-customer"


def cursors(h: Harness) -> dict[str, str | None]:
    return {side: h.store().get_cursor(FLOW, side) for side in ("source", "target")}


def test_by_tidsbanken_id_only_that_record(h: Harness) -> None:
    assert h.apply().exit_code == 0
    k1, k2 = h.sb.tidsbanken.records("Kunde")[:2]
    c1, c2 = (h.links(FLOW)[k["Id"]] for k in (k1, k2))
    h.sb.tidsbanken.edit("Kunde", k1["Id"], Navn="Bare denne AS")
    h.sb.tidsbanken.edit("Kunde", k2["Id"], Navn="Ikke denne AS")
    at_start = cursors(h)

    run = h.plan("--id", f"{FLOW}:{k1['Id']}")
    assert run.exit_code == 0, run.output
    assert f"~ update Kunde {k1['Id']} <-> Customer {c1}" in run.stdout
    assert k2["Id"] not in run.stdout and "prosjekt-project" not in run.stdout

    before = write_requests(h)
    run = h.apply("--id", f"{FLOW}:{k1['Id']}")
    assert run.exit_code == 0, run.output
    assert write_requests(h) - before == Counter({("custompms", "PATCH", f"/api/v1/customers/{c1}"): 1})
    assert run.counts()["updated"] == 1 and run.counts()["unchanged"] == 0
    assert (h.sb.custompms.get("customers", c1) or {})["name"] == "Bare denne AS"
    assert (h.sb.custompms.get("customers", c2) or {})["name"] == k2["Navn"]
    assert cursors(h) == at_start

    run = h.apply()  # the cursors stayed: the next run still sees the other edit
    assert run.exit_code == 0, run.output
    assert (h.sb.custompms.get("customers", c2) or {})["name"] == "Ikke denne AS"


def test_by_custompms_id_only_that_record(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    k1, k2 = h.sb.tidsbanken.records("Kunde")[:2]
    c1, c2 = (h.links(FLOW)[k["Id"]] for k in (k1, k2))
    h.sb.custompms.edit("customers", c1, phone="+47 22 00 00 01")
    h.sb.custompms.edit("customers", c2, phone="+47 22 00 00 02")

    before = write_requests(h)
    run = h.apply("--id", f"{FLOW}:{c1}")
    assert run.exit_code == 0, run.output
    assert write_requests(h) - before == Counter({("tidsbanken", "PUT", "/prosjekt/Kunde"): 1})
    assert (h.sb.tidsbanken.get("Kunde", k1["Id"]) or {})["Telefon"] == "+47 22 00 00 01"
    assert (h.sb.tidsbanken.get("Kunde", k2["Id"]) or {})["Telefon"] == k2["Telefon"]


def test_by_id_creates_a_record_not_synced_yet(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    hs.sb.tidsbanken.put("Kunde", {"Id": "K19991", "Navn": "Ny Enkeltvis AS", "Aktiv": True})
    hs.sb.tidsbanken.put("Kunde", {"Id": "K19992", "Navn": "Venter AS", "Aktiv": True})

    run = hs.apply("--id", f"{FLOW}:K19991")
    assert run.exit_code == 0, run.output
    assert run.counts()["created"] == 1
    assert "K19991" in hs.links(FLOW) and "K19992" not in hs.links(FLOW)


def test_an_id_found_on_neither_side_fails_that_record(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    k1 = hs.sb.tidsbanken.records("Kunde")[0]
    hs.sb.tidsbanken.edit("Kunde", k1["Id"], Navn="Likevel AS")
    before = hs.writes()
    run = hs.apply("--id", f"{FLOW}:K00000", "--id", f"{FLOW}:{k1['Id']}")
    assert run.exit_code == 1, run.output
    assert f"{FLOW}: K00000: not found on either side" in run.stderr
    assert run.counts()["failed"] == 1 and run.counts()["updated"] == 1
    assert hs.writes() == before + 1
    assert list(hs.store().iter_dead_letters(FLOW)) == []  # nothing to retry: it is not there

    plan = hs.plan("--id", f"{FLOW}:K00000")
    assert "x not found" in plan.stdout and "K00000: not found on either side" in plan.stdout


@pytest.mark.parametrize(("value", "message"), [
    ("kunde-customer", "expected DATAFLOW:ID"),
    ("kunde-customer:", "expected DATAFLOW:ID"),
    (":K10001", "expected DATAFLOW:ID"),
    ("no-such-flow:K10001", "unknown dataflow no-such-flow"),
])
def test_a_malformed_id_is_a_usage_error(hs: Harness, value: str, message: str) -> None:
    for command in (hs.apply, hs.plan):
        run = command("--id", value)
        assert run.exit_code == 2, run.output
        assert message in run.stderr and "Traceback" not in run.output
    assert hs.writes() == 0


def test_by_id_a_record_gone_from_one_side_follows_the_delete_policy(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    k1, k2 = hs.sb.tidsbanken.records("Kunde")[:2]
    c1, c2 = (hs.links(FLOW)[k["Id"]] for k in (k1, k2))
    hs.sb.custompms.delete("customers", c1)
    hs.sb.custompms.delete("customers", c2)

    run = hs.apply("--id", f"{FLOW}:{k1['Id']}")  # unlink, the mapping's policy
    assert run.exit_code == 0, run.output
    assert run.counts()["unlinked"] == 1
    assert k1["Id"] not in hs.links(FLOW) and k2["Id"] in hs.links(FLOW)
