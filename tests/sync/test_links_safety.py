"""Operator commands that cannot corrupt: a checked relink, matching that never takes another dataflow's
record, retry and dismiss of failed records, and --json listings; end to end through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sync_harness import Harness

from mapsync.sandbox.faults import Faults


def _first_pair(h: Harness, dataflow: str) -> tuple[str, str]:
    links = h.links(dataflow)
    source_id = sorted(links)[0]
    return source_id, links[source_id]


def _refuse_names_starting(h: Harness, prefix: str) -> None:
    h.sb.custompms.refuse(lambda resource, body: "not today" if str(body.get("name", "")).startswith(prefix)
                          else None)


# -- relink ------------------------------------------------------------------------------------------------


def test_relink_refuses_a_target_that_does_not_exist(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    kunde_id, _ = _first_pair(hs, "kunde-customer")
    assert hs.cli("links", "unlink", "kunde-customer", kunde_id).exit_code == 0
    run = hs.cli("links", "relink", "kunde-customer", kunde_id, "made-up-id")
    assert run.exit_code == 1
    assert "there is no Custompms Customer 'made-up-id'" in run.stderr
    assert kunde_id not in hs.links("kunde-customer")


def test_relink_refuses_a_source_that_does_not_exist(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    kunde_id, customer_id = _first_pair(hs, "kunde-customer")
    assert hs.cli("links", "unlink", "kunde-customer", kunde_id).exit_code == 0
    run = hs.cli("links", "relink", "kunde-customer", "K-nope", customer_id)
    assert run.exit_code == 1
    assert "there is no Tidsbanken Kunde 'K-nope'" in run.stderr
    assert "K-nope" not in hs.links("kunde-customer")


def test_relink_refuses_a_target_of_another_kind(hs: Harness) -> None:
    # The incident: a Kunde relinked (by typo) to an Avdeling's Customer overwrote the Avdeling's values.
    assert hs.apply().exit_code == 0
    kunde_id, customer_id = _first_pair(hs, "kunde-customer")
    _, department_id = _first_pair(hs, "avdeling-customer")
    department = hs.sb.custompms.get("customers", department_id)
    run = hs.cli("links", "relink", "kunde-customer", kunde_id, department_id)
    assert run.exit_code == 1
    assert f"Custompms Customer {department_id!r} is not one of this dataflow's records (those have kind: " \
           f"customer)" in run.stderr
    assert hs.links("kunde-customer")[kunde_id] == customer_id
    assert hs.apply().exit_code == 0
    assert hs.sb.custompms.get("customers", department_id) == department


def test_relink_refuses_a_target_linked_in_another_dataflow(hs: Harness) -> None:
    # Without constants, kunde-customer would take any Customer: the link in avdeling-customer still rules.
    assert hs.apply().exit_code == 0
    hs.set_mapping("kunde-customer", constants={})
    kunde_id, customer_id = _first_pair(hs, "kunde-customer")
    _, department_id = _first_pair(hs, "avdeling-customer")
    run = hs.cli("links", "relink", "kunde-customer", kunde_id, department_id)
    assert run.exit_code == 1
    assert f"Custompms Customer {department_id!r} is linked in dataflow avdeling-customer" in run.stderr
    assert hs.links("kunde-customer")[kunde_id] == customer_id


def test_matching_never_takes_a_record_linked_in_another_dataflow(hs: Harness) -> None:
    avdeling_id = hs.sb.tidsbanken.records("Avdeling")[0]["Id"]
    hs.sb.tidsbanken.edit("Avdeling", avdeling_id, Organisasjonsnr="974760673")
    assert hs.apply().exit_code == 0
    hs.set_mapping("kunde-customer", constants={})
    department_id = hs.links("avdeling-customer")[avdeling_id]
    department = hs.sb.custompms.get("customers", department_id)
    assert department is not None and department["organization_number"] == "974760673"
    # A new Kunde with the organisation number of a department: a match key, but that Customer is taken.
    hs.sb.tidsbanken.put("Kunde", {"Id": "KMATCH", "Navn": "Samme Orgnr AS", "Aktiv": True,
                                   "Organisasjonsnummer": "974760673"})
    applied = hs.apply("--full")
    assert applied.exit_code == 0, applied.output
    assert hs.links("kunde-customer")["KMATCH"] != department_id  # created, not matched
    assert hs.sb.custompms.get("customers", department_id) == department
    assert hs.links("avdeling-customer")[avdeling_id] == department_id


def test_a_record_that_comes_back_is_not_relinked_to_a_record_now_linked_elsewhere(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    kunde_id, customer_id = _first_pair(hs, "kunde-customer")
    hs.sb.tidsbanken.hidden.add(kunde_id)  # missing from one listing: its link is retired, kept for its return
    assert hs.apply("--full", "--dataflow", "kunde-customer").counts("kunde-customer")["unlinked"] == 1
    # Meanwhile its Customer is linked by hand in avdeling-customer (which, without constants, may take it).
    hs.set_mapping("avdeling-customer", constants={})
    avdeling_id, _ = _first_pair(hs, "avdeling-customer")
    relinked = hs.cli("links", "relink", "avdeling-customer", avdeling_id, customer_id)
    assert relinked.exit_code == 0, relinked.output
    hs.sb.tidsbanken.hidden.clear()
    back = hs.apply("--full", "--dataflow", "kunde-customer")
    assert back.exit_code == 0, back.output
    assert hs.links("kunde-customer")[kunde_id] != customer_id  # a Customer of its own, not the taken one
    assert hs.links("avdeling-customer")[avdeling_id] == customer_id


# -- failed records: retry and dismiss ----------------------------------------------------------------------


def test_retry_fails_again_then_goes_through(hs: Harness) -> None:
    _refuse_names_starting(hs, "Refused")
    hs.sb.tidsbanken.put("Kunde", {"Id": "KX1", "Navn": "Refused AS", "Aktiv": True})
    assert hs.apply().exit_code == 1
    again = hs.cli("links", "retry", "kunde-customer", "KX1")
    assert again.exit_code == 1
    assert "'KX1' failed again" in again.stderr and "not today" in again.stderr
    hs.sb.custompms.refuse(None)
    retried = hs.cli("links", "retry", "kunde-customer", "KX1")
    assert retried.exit_code == 0, retried.output
    assert "synced" in retried.stdout
    customer = hs.sb.custompms.get("customers", hs.links("kunde-customer")["KX1"])
    assert customer is not None and customer["name"] == "Refused AS"
    assert json.loads(hs.cli("links", "failed", "--json").stdout) == []


def test_retry_and_dismiss_refuse_a_record_not_in_the_ledger(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    kunde_id, _ = _first_pair(hs, "kunde-customer")
    for command in ("retry", "dismiss"):
        run = hs.cli("links", command, "kunde-customer", kunde_id)
        assert run.exit_code == 1
        assert f"no failed record {kunde_id!r}" in run.stderr


def test_dismiss_leaves_the_record_until_it_changes(hs: Harness) -> None:
    hs.set_connection("tidsbanken", overlap=0)  # so a later run does not list the record again anyway
    _refuse_names_starting(hs, "Refused")
    hs.sb.tidsbanken.put("Kunde", {"Id": "KX2", "Navn": "Refused Too AS", "Aktiv": True})
    assert hs.apply().exit_code == 1
    # Another Kunde edited a second later moves the cursor past KX2 (retried from the ledger meanwhile).
    other = next(k["Id"] for k in hs.sb.tidsbanken.records("Kunde") if k["Id"] != "KX2")
    hs.sb.tidsbanken.clock = lambda: datetime.now(UTC) + timedelta(seconds=1)
    hs.sb.tidsbanken.edit("Kunde", other, Telefon="+47 11 11 11 11")
    hs.sb.tidsbanken.clock = None
    assert hs.apply().exit_code == 1
    dismissed = hs.cli("links", "dismiss", "kunde-customer", "KX2")
    assert dismissed.exit_code == 0, dismissed.output
    assert json.loads(hs.cli("links", "failed", "--json").stdout) == []
    before = hs.writes()
    assert hs.apply().exit_code == 0  # not retried: no create is even tried
    assert hs.writes() == before
    hs.sb.tidsbanken.edit("Kunde", "KX2", Navn="Refused Again AS")
    assert hs.apply().exit_code == 1  # it changed: tried again
    failed = json.loads(hs.cli("links", "failed", "--json").stdout)
    assert [(f["record_id"], f["status"]) for f in failed] == [("KX2", 422)]


def test_a_create_with_no_answer_is_not_dismissed_but_retried_without_a_duplicate(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    hs.set_connection("custompms", max_retries=0)
    hs.sb.custompms.faults = Faults(rate_drop_after_write=1.0)  # the create is made, its answer lost
    hs.sb.tidsbanken.put("Kunde", {"Id": "KX4", "Navn": "Uten Svar AS", "Aktiv": True})
    assert hs.apply().exit_code == 1
    customers = len(hs.sb.custompms.records("customers"))
    refused = hs.cli("links", "dismiss", "kunde-customer", "KX4")
    assert refused.exit_code == 1
    assert "cannot dismiss 'KX4': its create may have been made (no answer)" in refused.stderr
    assert [f["record_id"] for f in json.loads(hs.cli("links", "failed", "--json").stdout)] == ["KX4"]
    hs.sb.custompms.faults = Faults()
    retried = hs.cli("links", "retry", "kunde-customer", "KX4")
    assert retried.exit_code == 0, retried.output
    assert len(hs.sb.custompms.records("customers")) == customers  # the same record found, not a second one
    assert "KX4" in hs.links("kunde-customer")


def test_dismiss_by_the_target_id_of_a_failed_update(hs: Harness) -> None:
    assert hs.apply().exit_code == 0
    kunde_id, customer_id = _first_pair(hs, "kunde-customer")
    _refuse_names_starting(hs, "Refused")
    hs.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Refused Update AS")
    assert hs.apply().exit_code == 1
    dismissed = hs.cli("links", "dismiss", "kunde-customer", customer_id)
    assert dismissed.exit_code == 0, dismissed.output
    assert kunde_id in dismissed.stdout
    assert list(hs.store().iter_dead_letters("kunde-customer")) == []


# -- listings as JSON ---------------------------------------------------------------------------------------


def test_every_listing_takes_json(hs: Harness) -> None:
    hs.set_mapping("kunde-customer", conflicts="manual")
    _refuse_names_starting(hs, "Refused")
    hs.sb.tidsbanken.put("Kunde", {"Id": "KX3", "Navn": "Refused AS", "Aktiv": True})
    hs.apply()
    kunde_id, customer_id = _first_pair(hs, "kunde-customer")
    hs.sb.tidsbanken.edit("Kunde", kunde_id, Epost="tb@example.no")
    hs.sb.custompms.edit("customers", customer_id, email="pms@example.no")
    hs.apply()

    listed = json.loads(hs.cli("links", "list", "--dataflow", "kunde-customer", "--json", "--limit", "0").stdout)
    assert set(listed[0]) == {"dataflow", "source_id", "target_id", "state", "synced_at"}
    assert {row["source_id"]: row["target_id"] for row in listed} == hs.links("kunde-customer")
    conflicts = json.loads(hs.cli("links", "conflicts", "--json").stdout)
    assert [(c["source_id"], c["target_id"], c["property"], c["source_value"], c["target_value"])
            for c in conflicts] == [(kunde_id, customer_id, "email", "tb@example.no", "pms@example.no")]
    assert set(conflicts[0]) == {"dataflow", "source_id", "target_id", "property", "base", "source_value",
                                 "target_value", "since"}
    failed = json.loads(hs.cli("links", "failed", "--json").stdout)
    assert [(f["dataflow"], f["side"], f["record_id"], f["status"]) for f in failed] == \
        [("kunde-customer", "target", "KX3", 422)]
    assert "not today" in failed[0]["reason"] and failed[0]["attempts"] == 2
